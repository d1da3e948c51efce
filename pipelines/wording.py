"""Counts in English for what the commands print: `1 document`, `2,000 documents`."""

IRREGULAR = {"was": "were", "is": "are", "this": "these"}


def counted(number: int, noun: str) -> str:
    """(1, 'document') -> '1 document'; (1234, 'dead letter') -> '1,234 dead letters'."""
    return f"{number:,} {noun if number == 1 else plural(noun)}"


def plural(noun: str) -> str:
    """'document' -> 'documents', 'was' -> 'were'."""
    return IRREGULAR.get(noun, noun + "s")
