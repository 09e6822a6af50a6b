"""QA tasks: one question about one document hidden among many (SQuAD, QuALITY, TOEFL)."""
