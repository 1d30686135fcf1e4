//! PostgreSQL knowledge: the GUC catalog and value normalization.
