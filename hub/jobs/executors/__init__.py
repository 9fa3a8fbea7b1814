"""Where jobs run: `base.Executor` is the contract; `local` (processes as the user's account) and
`kubernetes` (batch/v1 Jobs) implement it, chosen by `JobsArea.executor_class`."""
