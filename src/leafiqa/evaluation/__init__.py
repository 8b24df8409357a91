"""Stage 6 — evaluation: SRCC/KRCC/PLCC/RMSE and plots."""
