"""Operations: health, readiness, metrics and logs."""
