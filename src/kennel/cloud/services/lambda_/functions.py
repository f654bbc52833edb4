"""Functions and versions: create, read, list, update code and configuration, publish, delete.

CreateFunction answers ``State: Pending`` and the updates ``LastUpdateStatus: InProgress`` as AWS does,
but the work (storing and extracting the package) is finished before the answer, so every later read
sees ``Active`` / ``Successful`` and a waiter returns on its first poll.
"""

from __future__ import annotations

import json

from sqlalchemy import delete, func, select, update

from kennel.cloud.objectstore.seaweed import ObjectStoreUnavailable
from kennel.cloud.objectstore.store import ObjectNotReadable, object_arn
from kennel.cloud.services.base import Context
from kennel.cloud.services.lambda_ import common as m
from kennel.cloud.services.lambda_ import tables as t
from kennel.cloud.services.service_roles import LAMBDA
from kennel.runtime.functions.environment import FunctionSpec


class FunctionsMixin:
    cloud: object

    # ----- shared lookups ---------------------------------------------------------------------------
    def _name(self, params: dict, *, qualifier_ok: bool = True) -> tuple[str, str | None]:
        name, qualifier = m.split_name(params["FunctionName"], params.get("Qualifier"), self.account)
        if qualifier and not qualifier_ok:
            raise m.user(f"Qualifier {qualifier} is not allowed for this operation.")
        return name, qualifier

    def _arn(self, name: str, qualifier: str | None = None) -> str:
        return m.function_arn(self.region, self.account, name, qualifier)

    def _function_row(self, conn, name: str):
        row = conn.execute(select(t.functions).where(t.functions.c.name == name)).first()
        if row is None:
            raise m.user(f"Function not found: {self._arn(name)}", m.ResourceNotFound)
        return row

    def _version_row(self, conn, name: str, version: str):
        row = conn.execute(
            select(t.versions).where(t.versions.c.function == name, t.versions.c.version == version)
        ).first()
        if row is None:
            self._function_row(conn, name)
            raise m.user(f"Function not found: {self._arn(name, version)}", m.ResourceNotFound)
        return row

    def _configuration(self, name: str, row, *, qualified: bool = False) -> dict:
        cfg = json.loads(row.config)
        arn_qualifier = row.version if qualified or row.version != m.LATEST else None
        out = {
            "FunctionName": name,
            "FunctionArn": self._arn(name, arn_qualifier),
            "Runtime": cfg["Runtime"],
            "Role": cfg["Role"],
            "Handler": cfg["Handler"],
            "CodeSize": row.code_size,
            "Description": cfg.get("Description", ""),
            "Timeout": cfg["Timeout"],
            "MemorySize": cfg["MemorySize"],
            "LastModified": m.lambda_time(row.modified),
            "CodeSha256": m.sha256_b64(row.code_sha),
            "Version": row.version,
            "TracingConfig": {"Mode": cfg.get("TracingMode", "PassThrough")},
            "RevisionId": row.revision,
            "State": "Active",
            "LastUpdateStatus": "Successful",
            "PackageType": "Zip",
            "Architectures": cfg.get("Architectures", ["x86_64"]),
            "EphemeralStorage": {"Size": cfg.get("EphemeralStorage", 512)},
            "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
            "LoggingConfig": {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{name}"},
        }
        if cfg.get("Variables"):
            out["Environment"] = {"Variables": cfg["Variables"]}
        return out

    def _spec(self, name: str, row) -> FunctionSpec:
        cfg = json.loads(row.config)
        settings = self.cloud.settings
        return FunctionSpec(
            name=name,
            version=row.version,
            revision=row.revision,
            code_dir=self.code.path(row.code_sha),
            handler=cfg["Handler"],
            runtime=cfg["Runtime"],
            timeout_s=cfg["Timeout"],
            memory_mb=cfg["MemorySize"],
            role_arn=cfg["Role"],
            region=self.region,
            account=self.account,
            endpoint_url=settings.endpoint_url,
            variables=cfg.get("Variables") or {},
        )

    def _check_role(self, role_arn: str, name: str, ctx: Context) -> str:
        """The role's name, once sure the caller may pass it to Lambda (iam:PassRole with the function as
        iam:AssociatedResourceArn) and Lambda may assume it (it exists and trusts lambda.amazonaws.com)."""
        return self.cloud.service_roles.require_passable(
            ctx, role_arn, "lambda.amazonaws.com", self._arn(name), errors=LAMBDA
        )

    def _check_revision(self, params: dict, current: str) -> None:
        if params.get("RevisionId") and params["RevisionId"] != current:
            raise m.user(
                "The Revision Id provided does not match the latest Revision Id. "
                "Call the GetFunction/GetAlias API to retrieve the latest Revision Id",
                m.PreconditionFailed,
            )

    def _zip(self, code: dict, ctx: Context) -> bytes:
        if code.get("ImageUri"):
            m.check_runtime(None, "Image")
        if code.get("S3Bucket") or code.get("S3Key"):
            if code.get("ZipFile"):
                raise m.user("Please do not provide other FunctionCode parameters when providing a ZipFile.")
            return self._zip_from_s3(code, ctx)
        data = code.get("ZipFile")
        if not data:
            raise m.user("Please provide a source for function code.")
        if len(data) > m.MAX_ZIP_BYTES:
            raise m.user(f"Zipped size must be smaller than {m.MAX_ZIP_BYTES} bytes", m.RequestTooLarge)
        return data

    def _zip_from_s3(self, code: dict, ctx: Context) -> bytes:
        """Lambda reads the package with the caller's permissions (s3:GetObject on the object)."""
        bucket, key = code.get("S3Bucket"), code.get("S3Key")
        if not bucket or not key:
            raise m.user("Both S3Bucket and S3Key are required to read function code from S3.")
        resource = object_arn(bucket, key)
        decision = self.cloud.authorizer.decide(
            ctx.principal, "s3:GetObject", resource, now=ctx.now, source_ip=ctx.source_ip,
            region=ctx.region, request_id=ctx.request_id,
        )  # fmt: skip
        if not decision.allowed:
            raise m.user(
                "Your access has been denied by S3, please make sure your request credentials have "
                f"permission to GetObject for {bucket}/{key}. S3 Error Code: AccessDenied. S3 Error "
                "Message: Access Denied"
            )
        try:
            return self.cloud.objects.read(
                bucket, key, max_bytes=m.MAX_UNZIPPED_BYTES, version=code.get("S3ObjectVersion")
            )
        except ObjectNotReadable as exc:
            raise m.user(
                f"Error occurred while GetObject. S3 Error Code: {exc.code}. S3 Error Message: {exc}"
            ) from None
        except ObjectStoreUnavailable as exc:
            raise m.user(f"Error occurred while GetObject: the S3 store is unavailable ({exc})") from None

    def _gc_code(self, sha: str) -> None:
        with self.cloud.store.read() as conn:
            used = conn.execute(
                select(func.count()).select_from(t.versions).where(t.versions.c.code_sha == sha)
            ).scalar()
        if not used:
            self.code.remove(sha)

    # ----- operations -------------------------------------------------------------------------------
    def create_function(self, params: dict, ctx: Context) -> dict:
        name, _ = self._name(params, qualifier_ok=False)
        m.check_runtime(params.get("Runtime"), params.get("PackageType"))
        if not params.get("Handler"):
            m.check_runtime(None, None)
        timeout = params.get("Timeout", m.DEFAULT_TIMEOUT)
        memory = params.get("MemorySize", m.DEFAULT_MEMORY)
        m.check_limits(timeout, memory)
        variables = (params.get("Environment") or {}).get("Variables") or {}
        m.check_variables(variables)
        if params.get("Layers"):
            raise m.user("Kennel does not support Lambda layers; include the dependencies in the package.")
        data = self._zip(params["Code"], ctx)
        self._check_role(params["Role"], name, ctx)
        sha, size = self.code.put(data)
        cfg = {
            "Runtime": params["Runtime"],
            "Handler": params["Handler"],
            "Role": params["Role"],
            "Description": params.get("Description", ""),
            "Timeout": timeout,
            "MemorySize": memory,
            "Variables": variables,
            "TracingMode": (params.get("TracingConfig") or {}).get("Mode", "PassThrough"),
            "Architectures": params.get("Architectures") or ["x86_64"],
            "EphemeralStorage": (params.get("EphemeralStorage") or {}).get("Size", 512),
        }
        now = ctx.now.timestamp()
        with self.cloud.store.write() as conn:
            if conn.execute(select(t.functions.c.name).where(t.functions.c.name == name)).first():
                raise m.user(f"Function already exist: {name}", m.ResourceConflict)
            conn.execute(
                t.functions.insert().values(
                    name=name, created=now, next_version=1, tags=json.dumps(params.get("Tags") or {})
                )
            )
            conn.execute(
                t.versions.insert().values(
                    function=name,
                    version=m.LATEST,
                    config=json.dumps(cfg),
                    code_sha=sha,
                    code_size=size,
                    modified=now,
                    revision=m.revision(),
                )
            )
            row = (
                self._publish(conn, name, ctx.now.timestamp())
                if params.get("Publish")
                else self._version_row(conn, name, m.LATEST)
            )
        out = self._configuration(name, row)
        del out["LastUpdateStatus"]
        out.update(State="Pending", StateReason="The function is being created.", StateReasonCode="Creating")
        return out

    def get_function(self, params: dict, ctx: Context) -> dict:
        name, qualifier = self._name(params)
        with self.cloud.store.read() as conn:
            fn = self._function_row(conn, name)
            row = self._version_row(conn, name, self._version_of(conn, name, qualifier))
        out: dict = {
            "Configuration": self._configuration(name, row, qualified=qualifier is not None),
            "Code": {"RepositoryType": "S3", "Location": self.code.zip_path(row.code_sha).as_uri()},
        }
        if fn.reserved is not None:
            out["Concurrency"] = {"ReservedConcurrentExecutions": fn.reserved}
        tags = json.loads(fn.tags or "{}")
        if tags:
            out["Tags"] = tags
        return out

    def get_function_configuration(self, params: dict, ctx: Context) -> dict:
        return self.get_function(params, ctx)["Configuration"]

    def list_functions(self, params: dict, ctx: Context) -> dict:
        query = select(t.versions).order_by(t.versions.c.function, t.versions.c.version)
        if params.get("FunctionVersion") != "ALL":
            query = query.where(t.versions.c.version == m.LATEST)
        with self.cloud.store.read() as conn:
            rows = conn.execute(query).all()
        chunk, marker = m.page(
            rows,
            params.get("Marker"),
            params.get("MaxItems"),
            key=lambda r: (r.function, m.version_order(r.version)),
        )
        out: dict = {"Functions": [self._configuration(r.function, r) for r in chunk]}
        if marker:
            out["NextMarker"] = marker
        return out

    def update_function_code(self, params: dict, ctx: Context) -> dict:
        name, _ = self._name(params, qualifier_ok=False)
        data = self._zip(params, ctx)
        with self.cloud.store.read() as conn:
            current = self._version_row(conn, name, m.LATEST)
        self._check_revision(params, current.revision)
        if params.get("DryRun"):
            return self._configuration(name, current)
        sha, size = self.code.put(data)
        with self.cloud.store.write() as conn:
            conn.execute(
                update(t.versions)
                .where(t.versions.c.function == name, t.versions.c.version == m.LATEST)
                .values(code_sha=sha, code_size=size, modified=ctx.now.timestamp(), revision=m.revision())
            )
            row = (
                self._publish(conn, name, ctx.now.timestamp())
                if params.get("Publish")
                else self._version_row(conn, name, m.LATEST)
            )
        self.runtime.retire(name, m.LATEST)
        if current.code_sha != sha:
            self._gc_code(current.code_sha)
        return self._updating(name, row)

    def update_function_configuration(self, params: dict, ctx: Context) -> dict:
        name, _ = self._name(params, qualifier_ok=False)
        m.check_limits(params.get("Timeout"), params.get("MemorySize"))
        if "Runtime" in params:
            m.check_runtime(params["Runtime"], None)
        with self.cloud.store.read() as conn:
            current = self._version_row(conn, name, m.LATEST)
        self._check_revision(params, current.revision)
        cfg = json.loads(current.config)
        if "Role" in params and params["Role"] != cfg["Role"]:
            self._check_role(params["Role"], name, ctx)  # passing a new role needs iam:PassRole again
        for key in ("Role", "Handler", "Description", "Timeout", "MemorySize", "Runtime"):
            if key in params:
                cfg[key] = params[key]
        if "Environment" in params:
            cfg["Variables"] = (params["Environment"] or {}).get("Variables") or {}
            m.check_variables(cfg["Variables"])
        if "TracingConfig" in params:
            cfg["TracingMode"] = params["TracingConfig"].get("Mode", "PassThrough")
        with self.cloud.store.write() as conn:
            conn.execute(
                update(t.versions)
                .where(t.versions.c.function == name, t.versions.c.version == m.LATEST)
                .values(config=json.dumps(cfg), modified=ctx.now.timestamp(), revision=m.revision())
            )
            row = self._version_row(conn, name, m.LATEST)
        self.runtime.retire(name, m.LATEST)
        return self._updating(name, row)

    def _updating(self, name: str, row) -> dict:
        out = self._configuration(name, row)
        out.update(
            LastUpdateStatus="InProgress",
            LastUpdateStatusReason="The function is being created.",
            LastUpdateStatusReasonCode="Creating",
        )
        return out

    def delete_function(self, params: dict, ctx: Context) -> dict:
        name, qualifier = self._name(params)
        with self.cloud.store.write() as conn:
            self._function_row(conn, name)
            shas = {
                r[0] for r in conn.execute(select(t.versions.c.code_sha).where(t.versions.c.function == name))
            }
            if qualifier is None:
                conn.execute(delete(t.functions).where(t.functions.c.name == name))
            else:
                self._delete_version(conn, name, qualifier)
        if qualifier is None:
            self.runtime.unprovision(name)
            self.runtime.retire(name)
            self.runtime.set_reserved(name, None)
        else:
            self.runtime.unprovision(name, qualifier)
            self.runtime.retire(name, qualifier)
        for sha in shas:
            self._gc_code(sha)
        return {"StatusCode": 204}

    def _delete_version(self, conn, name: str, version: str) -> None:
        if version == m.LATEST:
            raise m.user("$LATEST version cannot be deleted without deleting the function.")
        if not m.is_version(version):
            raise m.user("Deletion of aliases is not supported.")
        self._version_row(conn, name, version)
        users = [
            a.name
            for a in conn.execute(select(t.aliases).where(t.aliases.c.function == name))
            if a.version == version
            or version in json.loads(a.routing or "{}").get("AdditionalVersionWeights", {})
        ]
        if users:
            raise m.user(
                f"Unable to delete version because the following aliases reference it: [{', '.join(users)}]",
                m.ResourceConflict,
            )
        for table in (t.versions, t.provisioned, t.policies, t.event_configs):
            column = table.c.version if table is t.versions else table.c.qualifier
            conn.execute(delete(table).where(table.c.function == name, column == version))

    def publish_version(self, params: dict, ctx: Context) -> dict:
        name, _ = self._name(params, qualifier_ok=False)
        with self.cloud.store.write() as conn:
            latest = self._version_row(conn, name, m.LATEST)
            current_sha = m.sha256_b64(latest.code_sha)
            if params.get("CodeSha256") and params["CodeSha256"] != current_sha:
                raise m.user(
                    f"CodeSHA256 ({params['CodeSha256']}) is different from current CodeSHA256 in "
                    f"$LATEST ({current_sha}). Please try again with the CodeSHA256 in $LATEST."
                )
            self._check_revision(params, latest.revision)
            row = self._publish(conn, name, ctx.now.timestamp(), params.get("Description"))
        return self._configuration(name, row)

    def _publish(self, conn, name: str, now: float, description: str | None = None):
        """A new version from $LATEST, unless the newest version already has its code and configuration."""
        latest = self._version_row(conn, name, m.LATEST)
        published = [
            r
            for r in conn.execute(select(t.versions).where(t.versions.c.function == name))
            if r.version != m.LATEST
        ]
        newest = max(published, key=lambda r: int(r.version), default=None)
        if newest is not None and newest.code_sha == latest.code_sha and _same(newest.config, latest.config):
            return newest
        cfg = json.loads(latest.config)
        if description is not None:
            cfg["Description"] = description
        number = self._function_row(conn, name).next_version
        conn.execute(update(t.functions).where(t.functions.c.name == name).values(next_version=number + 1))
        conn.execute(
            t.versions.insert().values(
                function=name,
                version=str(number),
                config=json.dumps(cfg),
                code_sha=latest.code_sha,
                code_size=latest.code_size,
                modified=now,
                revision=m.revision(),
            )
        )
        return self._version_row(conn, name, str(number))

    def list_versions_by_function(self, params: dict, ctx: Context) -> dict:
        name, _ = self._name(params, qualifier_ok=False)
        with self.cloud.store.read() as conn:
            self._function_row(conn, name)
            rows = conn.execute(select(t.versions).where(t.versions.c.function == name)).all()
        chunk, marker = m.page(
            rows, params.get("Marker"), params.get("MaxItems"), key=lambda r: (m.version_order(r.version),)
        )
        out: dict = {"Versions": [self._configuration(name, r, qualified=True) for r in chunk]}
        if marker:
            out["NextMarker"] = marker
        return out


def _same(one: str, other: str) -> bool:
    """Configurations equal apart from the description (PublishVersion may set its own)."""
    first, second = json.loads(one), json.loads(other)
    first.pop("Description", None)
    second.pop("Description", None)
    return first == second
