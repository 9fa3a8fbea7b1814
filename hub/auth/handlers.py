"""The hub pages of the Keycloak authenticator: login, callback (with the refusal page),
logout (ending the Keycloak session too), the page after logout, and back-channel logout."""
from __future__ import annotations

import json
import time

from jinja2 import TemplateNotFound
from jupyterhub import orm
from jupyterhub.handlers import BaseHandler
from jupyterhub.utils import new_token
from oauthenticator.oauth2 import OAuthCallbackHandler, OAuthLoginHandler, OAuthLogoutHandler
from tornado import web

from .auth_state import without_credentials
from .tokens import TokenError

REFUSED_TEMPLATE = "astrago-refused.html"


class LoginRefused(web.HTTPError):
    """The realm vouched for the user, but AstraGo's rules do not let them in."""

    def __init__(self, reason: str, *, username: str = "", id_token: str | None = None):
        super().__init__(403, reason)
        self.reason_text = reason
        self.username = username
        self.id_token = id_token


class KeycloakLoginHandler(OAuthLoginHandler):
    async def get(self):
        await self.authenticator.load_discovery()
        return super().get()


class KeycloakCallbackHandler(OAuthCallbackHandler):
    """OAuthenticator's callback, with a page that says why a login was refused."""

    async def get(self):
        self.check_arguments()
        try:
            user = await self.login_user()
        except LoginRefused as refused:
            return await self.refuse(refused.reason_text, refused.username, refused.id_token)
        if user is None:
            return await self.refuse("This account may not use AstraGo (it is blocked, or its name is not "
                                     "a valid AstraGo user name).", "", None)
        self.redirect(self.get_next_url(user))

    async def refuse(self, reason: str, username: str, id_token: str | None):
        self.set_status(403)
        switch_url = self.authenticator.end_session_url(id_token, self) if id_token else None
        try:
            html = await self.render_template(REFUSED_TEMPLATE, reason=reason, refused_user=username,
                                              switch_url=switch_url)
        except TemplateNotFound:  # a deployment without AstraGo's templates: the hub's error page
            raise web.HTTPError(403, reason) from None
        self.finish(html)


class KeycloakLogoutHandler(OAuthLogoutHandler):
    """Hub logout; then Keycloak's end-session endpoint, so the realm session ends too."""

    _end_session_url: str | None = None

    async def handle_logout(self):
        await super().handle_logout()
        user = self.current_user
        if user is None:
            return

        auth_state = await user.get_auth_state() or {}
        if self.authenticator.end_keycloak_session:
            await self.authenticator.load_discovery()
            self._end_session_url = self.authenticator.end_session_url(auth_state.get("id_token"), self)
        if auth_state:
            # the hub forgets this login's tokens: another browser of the user logs in again
            await user.save_auth_state(without_credentials(auth_state))
            self.db.commit()

    async def render_logout_page(self):
        if self._end_session_url:
            self.redirect(self._end_session_url)
            return
        return await super().render_logout_page()


class LoggedOutHandler(BaseHandler):
    """Where Keycloak sends the browser after logout (the client's post-logout redirect URI)."""

    async def get(self):
        self.finish(await self.render_template("logout.html"))


class BackchannelLogoutHandler(BaseHandler):
    """OpenID Connect Back-Channel Logout: the realm POSTs a signed `logout_token` when a realm
    session ends (logout elsewhere, an administrator's logout, ...). A valid token ends every hub
    session of that user: their login cookie stops working (a new `cookie_id`), the OAuth tokens
    their browser sessions hold for servers and services are deleted, and the realm tokens kept
    in auth_state are dropped. Their servers keep running; their own API tokens stay valid.
    Anything that is not a valid logout token of the realm for this client is refused (400)."""

    def check_xsrf_cookie(self):
        return  # server to server: authenticated by the signed token, not by cookies

    def _answer(self, status: int, error: str = "", description: str = ""):
        self.set_status(status)
        self.set_header("Cache-Control", "no-store")
        if error:
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"error": error, "error_description": description}))
        else:
            self.finish()

    async def post(self):
        token = self.get_body_argument("logout_token", default=None)
        if not token:
            return self._answer(400, "invalid_request", "no logout_token")
        authenticator = self.authenticator
        try:
            claims = await (await authenticator.verifier()).verify_logout_token(token)
        except TokenError as exc:
            self.log.warning("Refused a back-channel logout: %s", exc)
            return self._answer(400, "invalid_request", str(exc))
        if authenticator.seen_logout_token(claims["jti"], time.time() + authenticator.logout_token_max_age * 2):
            self.log.warning("Refused a replayed back-channel logout (jti %s)", claims["jti"])
            return self._answer(400, "invalid_request", "logout token used before")
        ended = []
        for name in await authenticator.users_for_logout(claims, self.db):
            user = self.find_user(name)
            if user is not None and await self._end_sessions(user, claims):
                ended.append(name)
        self.log.info("Back-channel logout (sid %s): ended the hub sessions of %s",
                      claims.get("sid"), ", ".join(ended) or "nobody")
        return self._answer(200)

    async def _end_sessions(self, user, claims: dict) -> bool:

        auth_state = await user.get_auth_state() or {}
        known_sub = auth_state.get("sub")
        if claims.get("sub") and known_sub and claims["sub"] != known_sub:
            return False  # that hub name now belongs to another realm user
        user.orm_user.cookie_id = new_token()  # every login cookie of the user stops working
        for token in self.db.query(orm.APIToken).filter(
                orm.APIToken.user_id == user.orm_user.id, orm.APIToken.session_id.isnot(None)):
            self.db.delete(token)  # OAuth tokens of browser sessions (servers, services)
        self.db.commit()
        if auth_state:
            await user.save_auth_state(without_credentials(auth_state))
            self.db.commit()
        user._auth_refreshed = None
        return True
