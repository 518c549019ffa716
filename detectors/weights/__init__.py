"""Model files shipped with Qinghe (the scenes detector trained by `qinghe models train`; see docs/models.md)."""
