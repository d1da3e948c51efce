"""Finetuner-shaped docarray classes, as a user of docarray 0.40 would declare them (not the project's own
classes): content, tags with finetuner_label / finetuner_score, chunks with a modality, no document modality."""
from typing import Any, Dict, Optional

from docarray import BaseDoc, DocList
from pydantic import Field


class FinetunerChunk(BaseDoc):
    """A Finetuner chunk: content plus modality (DocList needs the class defined first, no forward refs)."""

    text: Optional[str] = None
    uri: Optional[str] = None
    modality: Optional[str] = None


class FinetunerDoc(BaseDoc):
    """Shaped like a Finetuner Document: content plus tags, no modality."""

    text: Optional[str] = None
    uri: Optional[str] = None
    tags: Dict[str, Any] = Field(default_factory=dict)
    chunks: Optional[DocList[FinetunerChunk]] = None
