"""The one exception type the CLI reports as a one-line message with exit code 2."""


class UserError(ValueError):
    """A problem with the user's input or environment (not a bug in antlm)."""


class RunError(UserError):
    """A training run that cannot start or go on (its out dir, data, device or numerics)."""
