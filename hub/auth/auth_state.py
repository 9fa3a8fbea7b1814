"""What a user's auth_state holds, and which of it are credentials."""
from __future__ import annotations

#: auth_state keys that are credentials (dropped when the hub session ends)
CREDENTIALS = ("access_token", "refresh_token", "id_token", "token_response")


def without_credentials(auth_state: dict | None) -> dict:
    """auth_state with the tokens removed (the claims and the session id stay, for logs)."""
    return {k: v for k, v in (auth_state or {}).items() if k not in CREDENTIALS}
