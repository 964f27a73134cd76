"""Slack installs for many workspaces: Bolt's OAuth flow over slack_sdk's installation store, and the one state
store we add (over the platform's BlobStore, so it is the same code on files and on S3).

- Locally: installations under $MLBOT_HOME/slack-installations (slack_sdk's FileInstallationStore, files
  readable by this user only), OAuth states under the blob store's `slack-oauth-states/`.
- On AWS: installations in the stack's bucket under `slack-installations/<client id>/...`
  (AmazonS3InstallationStore; the bucket encrypts at rest and refuses non-TLS), states under
  `slack-oauth-states/` (a lifecycle rule removes abandoned ones).
On with SLACK_CLIENT_ID and SLACK_CLIENT_SECRET; without them the app runs on one SLACK_BOT_TOKEN, as before.
"""
from __future__ import annotations

import os
import time
import uuid
from typing import Any

from slack_bolt.authorization.authorize import InstallationStoreAuthorize
from slack_bolt.oauth.callback_options import CallbackOptions, FailureArgs, SuccessArgs
from slack_bolt.oauth.oauth_settings import OAuthSettings
from slack_sdk.oauth.installation_store import InstallationStore
from slack_sdk.oauth.state_store import OAuthStateStore

from platform_core.config import Settings
from platform_core.errors import BlobNotFound, StorageError
from platform_core.ports import BlobStore
from platform_core.retention import come_back

INSTALLATIONS = "slack-installations/"
STATES = "slack-oauth-states/"
STATE_TTL_S = 600  # the "Add to Slack" page has ten minutes to come back


class BlobStateStore(OAuthStateStore):
    """OAuth states as blobs: issued with their time, consumed once (read, then deleted), valid STATE_TTL_S."""

    def __init__(self, blobs: BlobStore, *, ttl_s: float = STATE_TTL_S, clock=time.time) -> None:
        self._blobs, self._ttl, self._clock = blobs, ttl_s, clock

    def issue(self, *args: Any, **kwargs: Any) -> str:
        state = uuid.uuid4().hex
        self._blobs.put(STATES + state, repr(self._clock()).encode(), "text/plain")
        return state

    def consume(self, state: str) -> bool:
        if not state or not state.isalnum() or len(state) > 64:  # never a path
            return False
        try:
            issued = float(self._blobs.get(STATES + state).decode())
        except (BlobNotFound, ValueError):
            return False
        try:
            self._blobs.delete(STATES + state)
        except StorageError:  # it could not be spent: refuse it rather than let it be used twice
            return False
        return self._clock() - issued < self._ttl


def installation_store(settings: Settings, backend: Any) -> InstallationStore | None:
    """Where each workspace's installation (its bot token) is kept; None for a single-workspace app."""
    if not settings.slack_client_id:
        return None
    if backend.name == "aws":
        from slack_sdk.oauth.installation_store.amazon_s3 import AmazonS3InstallationStore

        return AmazonS3InstallationStore(s3_client=backend.client("s3"), bucket_name=settings.bucket,
                                         client_id=INSTALLATIONS + settings.slack_client_id,
                                         historical_data_enabled=False)
    from slack_sdk.oauth.installation_store.file import FileInstallationStore

    base = settings.home / "slack-installations"
    base.mkdir(parents=True, exist_ok=True)
    os.chmod(base, 0o700)  # bot tokens: this user only
    return FileInstallationStore(base_dir=str(base), client_id=settings.slack_client_id,
                                 historical_data_enabled=False)


def oauth_settings(settings: Settings, backend: Any, store: InstallationStore) -> OAuthSettings:
    """Bolt's install flow: `GET /slack/install` redirects to Slack's authorize page with the client id, the
    scopes and a state; `GET /slack/oauth_redirect` checks the state (once), exchanges the code with
    oauth.v2.access and stores the installation. A workspace that installs again within the retention period
    after an uninstall keeps its datasets (platform_core.retention.come_back).

    Each request finds its workspace's bot in the store (so an uninstalled workspace is refused at once);
    Bolt's auth.test answer for a token is cached per container, so the acknowledgement and the lazy half
    of one request, and later requests on a warm container, call Slack's auth.test once, not each time."""
    def installed(args: SuccessArgs):
        come_back(backend.blobs, installed_tenant(args.installation))
        return args.default.success(args)

    def refused(args: FailureArgs):
        return args.default.failure(args)

    oauth = OAuthSettings(client_id=settings.slack_client_id, client_secret=settings.slack_client_secret,
                          scopes=list(settings.slack_scopes), installation_store=store,
                          installation_store_bot_only=True, state_store=BlobStateStore(backend.blobs),
                          install_path="/slack/install", redirect_uri_path="/slack/oauth_redirect",
                          install_page_rendering_enabled=False, state_expiration_seconds=STATE_TTL_S,
                          callback_options=CallbackOptions(success=installed, failure=refused))
    oauth.authorize = InstallationStoreAuthorize(
        logger=oauth.authorize.logger, client_id=oauth.client_id, client_secret=oauth.client_secret,
        token_rotation_expiration_minutes=oauth.token_rotation_expiration_minutes, installation_store=store,
        bot_only=True, cache_enabled=True)
    return oauth


def installed_tenant(installation: Any) -> str:
    """The tenant an installation serves: the enterprise for an org-wide install, else the workspace."""
    org_wide = bool(installation.is_enterprise_install)
    return f"slack:{installation.enterprise_id if org_wide else installation.team_id}"


def bot_token(store: InstallationStore | None, team: str | None, enterprise: str | None = None) -> str | None:
    """The bot token of one installed workspace, or None (never installed, or uninstalled since).

    ``team`` is the workspace a destination names (for an org-wide Enterprise Grid install, the enterprise
    itself) and ``enterprise`` the Grid organisation it belongs to, if any: slack_sdk's stores key an
    installation by both."""
    if store is None or not team:
        return None
    org_wide = bool(enterprise) and team == enterprise
    bot = store.find_bot(enterprise_id=enterprise or None, team_id=None if org_wide else team,
                         is_enterprise_install=org_wide)
    return bot.bot_token if bot else None
