"""AstraGo's permissions, declared as JupyterHub custom scopes and roles.

JupyterHub owns identity and RBAC (DESIGN.md): AstraGo never keeps its own
permission tables. Users get their own things through `!user`-filtered scopes
in the default `user` role; administrators get the unfiltered scopes through
the `astrago-admin` role. The Keycloak authenticator manages roles
(`Authenticator.manage_roles`): at every login and token refresh it hands each
user the roles their Keycloak roles and groups map to (docs/auth-mapping.md) and
puts admins into the `astrago-admins` group. `load_roles` only defines the roles.
"""

SERVICE_NAME = "astrago"
ADMIN_GROUP = "astrago-admins"
ADMIN_ROLE = "astrago-admin"
QUOTA_ADMIN_ROLE = "quota-admin"
FLEET_ADMIN_ROLE = "fleet-admin"
AUDITOR_ROLE = "astrago-auditor"
METRICS_ROLE = "astrago-metrics"
GPU_USER_ROLE = "gpu-user"

READ = "custom:astrago:read"
JOBS = "custom:astrago:jobs"
UPLOADS = "custom:astrago:uploads"
QUOTA_ADMIN = "custom:astrago:quota:admin"
FLEET_ADMIN = "custom:astrago:fleet:admin"
AUDIT_READ = "custom:astrago:audit:read"
ADMISSIONS = "custom:astrago:admissions"
QUOTA_REQUEST = "custom:astrago:quota:request"
GPUS = "custom:astrago:gpus"
METRICS_READ = "custom:astrago:metrics:read"
ENVIRONMENTS_ADMIN = "custom:astrago:environments:admin"
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
    ADMISSIONS: {
        "description": "Ask for and release admissions (allocations) on behalf of users: spawners do this.",
    },
    QUOTA_REQUEST: {
        "description": "Ask administrators for more quota.",
    },
    GPUS: {
        "description": "Run workspaces and jobs on GPU slices (the gpu-user role).",
    },
    METRICS_READ: {
        "description": "Read AstraGo's Prometheus metrics (/services/astrago/metrics): every user's GPU use.",
    },
    ENVIRONMENTS_ADMIN: {
        "description": "Create and delete the environments (frameworks) users' servers and jobs run in.",
        "subscopes": [READ],
    },
    ADMIN: {
        "description": "Everything in AstraGo, for every user.",
        "subscopes": [READ, JOBS, UPLOADS, QUOTA_ADMIN, FLEET_ADMIN, AUDIT_READ, ADMISSIONS, QUOTA_REQUEST, GPUS,
                      METRICS_READ, ENVIRONMENTS_ADMIN],
    },
}

#: what every user may do with their own things (filters expand to the owner)
USER_SCOPES = [
    "self",
    f"access:services!service={SERVICE_NAME}",
    f"{READ}!user",
    f"{QUOTA_REQUEST}!user",
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
        # Held through Keycloak (see astrago.hub.auth.mapping): the authenticator manages
        # roles, so these definitions assign nobody (JupyterHub refuses `users`/`groups` here).
        {
            "name": GPU_USER_ROLE,
            "description": "May run workspaces and jobs on GPU slices.",
            "scopes": [f"{GPUS}!user", f"access:services!service={SERVICE_NAME}"],
        },
        {
            "name": QUOTA_ADMIN_ROLE,
            "description": "Sets quotas and decides quota change requests, for every user.",
            "scopes": [QUOTA_ADMIN, f"access:services!service={SERVICE_NAME}"],
        },
        {
            "name": FLEET_ADMIN_ROLE,
            "description": "Manages the GPU inventory and MIG layouts.",
            "scopes": [FLEET_ADMIN, f"access:services!service={SERVICE_NAME}"],
        },
        {
            "name": AUDITOR_ROLE,
            "description": "Reads AstraGo's audit log.",
            "scopes": [AUDIT_READ, f"access:services!service={SERVICE_NAME}"],
        },
        {
            # for Prometheus: a service (or a token) with this role scrapes AstraGo's and the hub's metrics
            "name": METRICS_ROLE,
            "description": "Reads AstraGo's and JupyterHub's Prometheus metrics.",
            "scopes": [METRICS_READ, "read:metrics", f"access:services!service={SERVICE_NAME}"],
        },
        {
            "name": ADMIN_ROLE,
            "description": "AstraGo administrators: all AstraGo scopes for all users.",
            "scopes": [ADMIN, f"access:services!service={SERVICE_NAME}"],
        },
    ]


#: what the AstraGo service itself may do at the hub (its role `astrago-service`): read users, groups
#: and servers (quotas, teams, the fleet view), stop servers (quota reconcile, idle-GPU reclaim), and `tokens`: make,
#: read and revoke short-lived API tokens of users, through which a Keycloak bearer caller gets
#: exactly the scopes JupyterHub computes for them (astrago.hub.auth.bearer; docs/keycloak.md)
SERVICE_HUB_SCOPES = ["list:users", "read:users", "read:groups", "read:servers", "admin:servers", "tokens"]


def service_role() -> dict:
    """The hub role of the AstraGo service (`c.JupyterHub.load_roles`, embedded and cluster mode)."""
    return {
        "name": "astrago-service",
        "description": "What the AstraGo service needs of the hub",
        "scopes": list(SERVICE_HUB_SCOPES),
        "services": [SERVICE_NAME],
    }


#: JupyterHub roles a Keycloak role of the same name grants by default (docs/auth-mapping.md)
MAPPABLE_ROLES = (ADMIN_ROLE, QUOTA_ADMIN_ROLE, FLEET_ADMIN_ROLE, AUDITOR_ROLE, GPU_USER_ROLE)


def oauth_scopes_for_service() -> list[str]:
    """Scopes a browser session with the service may carry (intersected with the user's own)."""
    return [f"access:services!service={SERVICE_NAME}", READ, JOBS, UPLOADS, QUOTA_ADMIN, FLEET_ADMIN, AUDIT_READ,
            ADMISSIONS, QUOTA_REQUEST, GPUS, METRICS_READ, ENVIRONMENTS_ADMIN, ADMIN]
