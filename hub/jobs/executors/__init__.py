"""Where jobs run: `local` (processes as the user's account) and `kubernetes` (batch/v1 Jobs)."""
