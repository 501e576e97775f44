"""Pipeline stages: each a pure computation plus a thin, resumable runner."""
