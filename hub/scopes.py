"""AstraGo's permissions, declared as JupyterHub custom scopes and roles.

JupyterHub owns identity and RBAC (DESIGN.md): AstraGo never keeps its own
permission tables. Users get their own things through `!user`-filtered scopes
in the default `user` role; administrators get the unfiltered scopes through
the `astrago-admin` role, held by the `astrago-admins` group, which the
Keycloak authenticator puts admins into at login.
"""

SERVICE_NAME = "astrago"
ADMIN_GROUP = "astrago-admins"
ADMIN_ROLE = "astrago-admin"

READ = "custom:astrago:read"
JOBS = "custom:astrago:jobs"
UPLOADS = "custom:astrago:uploads"
QUOTA_ADMIN = "custom:astrago:quota:admin"
FLEET_ADMIN = "custom:astrago:fleet:admin"
AUDIT_READ = "custom:astrago:audit:read"
ADMIN = "custom:astrago:admin"

CUSTOM_SCOPES = {
    READ: {
        "description": "Read AstraGo records: quotas, usage, allocations, jobs, uploads.",
    },
    JOBS: {
        "description": "Submit, follow and cancel AstraGo batch jobs.",
    },
    UPLOADS: {
        "description": "Create, resume and delete resumable uploads.",
    },
    QUOTA_ADMIN: {
        "description": "Set quotas and decide quota change requests.",
        "subscopes": [READ],
    },
    FLEET_ADMIN: {
        "description": "Manage the GPU inventory and MIG layouts.",
        "subscopes": [READ],
    },
    AUDIT_READ: {
        "description": "Read AstraGo's audit log.",
    },
    ADMIN: {
        "description": "Everything in AstraGo, for every user.",
        "subscopes": [READ, JOBS, UPLOADS, QUOTA_ADMIN, FLEET_ADMIN, AUDIT_READ],
    },
}

#: what every user may do with their own things (filters expand to the owner)
USER_SCOPES = [
    "self",
    f"access:services!service={SERVICE_NAME}",
    f"{READ}!user",
    f"{JOBS}!user",
    f"{UPLOADS}!user",
]

#: what a user's single-user server may do on its owner's behalf (magics, upload helper)
SERVER_TOKEN_SCOPES = [
    "users:activity!user",
    f"access:services!service={SERVICE_NAME}",
    f"{READ}!user",
    f"{JOBS}!user",
    f"{UPLOADS}!user",
]


def roles() -> list[dict]:
    """The JupyterHub role definitions AstraGo loads (`c.JupyterHub.load_roles`)."""
    return [
        {
            "name": "user",
            "description": "Every user: their own servers and their own AstraGo things.",
            "scopes": list(USER_SCOPES),
        },
        {
            "name": ADMIN_ROLE,
            "description": "AstraGo administrators: all AstraGo scopes for all users.",
            "scopes": [ADMIN, f"access:services!service={SERVICE_NAME}"],
            "groups": [ADMIN_GROUP],
        },
    ]


def oauth_scopes_for_service() -> list[str]:
    """Scopes a browser session with the service may carry (intersected with the user's own)."""
    return [f"access:services!service={SERVICE_NAME}", READ, JOBS, UPLOADS, QUOTA_ADMIN, FLEET_ADMIN, AUDIT_READ, ADMIN]
