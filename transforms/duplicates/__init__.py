"""Near-duplicate signatures of texts, images and point clouds, and the bucketed search for similar pairs."""
