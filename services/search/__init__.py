"""Vector search service: FAISS indexes over the catalog's items and looks. Built in issue 5."""
