"""The MLflow Model Registry: a new version per retrain, and the ``champion`` alias moved only when earned.

The alias moves only when the new version beats the current champion's test AUROC on the same split hash
(``decide_champion``, a pure function); both numbers are stored as version tags. A champion trained on
generated images (the demo's synthetic radiographs, tag ``training_data=synthetic``) is never compared: the
first model trained on real images takes the alias from it. ``download_model`` fetches a registered (or
logged) model's folder for ``predict``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fracture_tune.classifier.package import RecordedHash
from fracture_tune.errors import FractureTuneError

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

CHAMPION_ALIAS = "champion"
TRAINING_DATA_TAG = "training_data"  # on each version: what its images were
SYNTHETIC_DATA, REAL_DATA = "synthetic", "images"
PROMOTION_POLICIES = ("if-better", "always", "never")
MLFLOW_URI_SCHEMES = (
    "models:/",
    "runs:/",
    "mlflow-artifacts:",
    "s3://",
    "gs://",
    "wasbs://",
    "dbfs:/",
    "http",
)


@dataclass(frozen=True)
class ChampionState:
    version: str
    test_auroc: float
    split_hash: str
    synthetic: bool = False  # trained on generated images (the demo's)


@dataclass(frozen=True)
class ChampionDecision:
    promote: bool
    reason: str
    previous: ChampionState | None


def decide_champion(
    new_test_auroc: float,
    new_split_hash: str,
    current: ChampionState | None,
    policy: str = "if-better",
    *,
    new_synthetic: bool = False,
) -> ChampionDecision:
    """Whether the new version becomes the champion, and why (in words for the report and tags).

    ``new_synthetic``: the new version was trained on generated images. A synthetic champion gives way to any
    model trained on real images: its AUROC on generated images says nothing about radiographs."""
    if policy not in PROMOTION_POLICIES:
        raise FractureTuneError(
            f"unknown promotion policy {policy!r}; use one of {', '.join(PROMOTION_POLICIES)}"
        )
    if policy == "never":
        return ChampionDecision(False, "promotion disabled (--promote never)", current)
    if policy == "always":
        return ChampionDecision(True, "promotion forced (--promote always)", current)
    if current is None:
        return ChampionDecision(True, "no champion yet", None)
    if current.synthetic and not new_synthetic:
        return ChampionDecision(
            True,
            f"champion v{current.version} was trained on synthetic images; this model, trained on real ones, "
            "replaces it",
            current,
        )
    if current.split_hash != new_split_hash:
        return ChampionDecision(
            False,
            f"champion v{current.version} was tested on split {current.split_hash[:12]}, this model on "
            f"{new_split_hash[:12]}: AUROCs on different test sets are not comparable",
            current,
        )
    if not math.isfinite(new_test_auroc) or new_test_auroc <= current.test_auroc:
        return ChampionDecision(
            False,
            f"test AUROC {new_test_auroc:.4f} does not beat champion v{current.version}'s "
            f"{current.test_auroc:.4f}",
            current,
        )
    return ChampionDecision(
        True,
        f"test AUROC {new_test_auroc:.4f} beats champion v{current.version}'s {current.test_auroc:.4f}",
        current,
    )


def current_champion(client: MlflowClient, name: str) -> ChampionState | None:
    from mlflow.exceptions import MlflowException

    try:
        version = client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    except MlflowException:
        return None  # no registered model, or no alias yet
    tags = version.tags or {}
    try:
        auroc = float(tags.get("test_auroc", "nan"))
    except ValueError:
        auroc = math.nan
    # A champion without a readable AUROC is treated as beatable by any finite AUROC on its split.
    return ChampionState(
        str(version.version),
        auroc if math.isfinite(auroc) else -math.inf,
        tags.get("split_hash", ""),
        synthetic=tags.get(TRAINING_DATA_TAG) == SYNTHETIC_DATA,
    )


@dataclass(frozen=True)
class Registration:
    name: str
    version: str
    decision: ChampionDecision


def register_version(
    client: MlflowClient,
    *,
    model_uri: str,
    name: str,
    run_id: str,
    test_auroc: float,
    split_hash: str,
    version_tags: dict[str, str],
    policy: str = "if-better",
    synthetic: bool = False,
) -> Registration:
    """A new version of ``name`` from ``model_uri``; the champion alias moved per ``decide_champion``.
    ``synthetic``: the model was trained on generated images (tagged, so a later real model replaces it)."""
    import mlflow

    champion = current_champion(client, name)
    decision = decide_champion(test_auroc, split_hash, champion, policy, new_synthetic=synthetic)
    version = mlflow.register_model(model_uri, name, await_registration_for=60)
    tags = {
        **version_tags,
        "test_auroc": repr(float(test_auroc)),  # full precision: compared later
        "split_hash": split_hash,
        TRAINING_DATA_TAG: SYNTHETIC_DATA if synthetic else REAL_DATA,
        "source_run_id": run_id,
        "champion_decision": decision.reason,
        "previous_champion_version": champion.version if champion else "",
        "previous_champion_test_auroc": repr(champion.test_auroc) if champion else "",
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version.version), key, value)
    if decision.promote:
        client.set_registered_model_alias(name, CHAMPION_ALIAS, str(version.version))
    log.info("registered %s v%s; champion: %s", name, version.version, decision.reason)
    return Registration(name, str(version.version), decision)


def download_model(model_uri: str, tracking_uri: str, scratch: Path) -> Path:
    """A registered or logged model's folder (``models:/NAME@ALIAS``, ``runs:/ID/model``…), in ``scratch``."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from fracture_tune.data.redaction import redact_secrets

    mlflow.set_tracking_uri(tracking_uri)
    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(scratch)))
    except (MlflowException, OSError) as error:
        raise FractureTuneError(
            f"cannot fetch model {model_uri!r} from {redact_secrets(tracking_uri)}: "
            + redact_secrets(str(error)),
            hint="check the name/alias (`mlflow models` UI) and pass --tracking-uri if it lives elsewhere",
        ) from error


def hash_recorded_in_mlflow(model_uri: str, tracking_uri: str) -> RecordedHash:
    """The ``weights_sha256`` tag retrain set on the run that logged the model behind ``model_uri``
    (``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``runs:/RUN_ID/...``), read from the tracking store —
    not from the artifact store the weights come from."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from fracture_tune.data.redaction import redact_secrets

    client = MlflowClient(tracking_uri)
    try:
        run_id: str | None
        if model_uri.startswith("runs:/"):
            run_id = model_uri.removeprefix("runs:/").split("/", 1)[0]
        elif model_uri.startswith("models:/"):
            reference = model_uri.removeprefix("models:/")
            if "@" in reference:
                name, alias = reference.split("@", 1)
                run_id = client.get_model_version_by_alias(name, alias.strip("/")).run_id
            else:
                name, version = reference.split("/", 1)
                run_id = client.get_model_version(name, version.strip("/")).run_id
        else:
            return RecordedHash(None, f"{model_uri} (no run behind this URI)")
        if not run_id:
            return RecordedHash(None, f"{model_uri} (the model version names no run)")
        tag = client.get_run(run_id).data.tags.get("weights_sha256")
    except (MlflowException, ValueError) as error:
        return RecordedHash(None, f"{model_uri} ({redact_secrets(str(error).splitlines()[0][:200])})")
    return RecordedHash(tag or None, f"the weights_sha256 tag of run {run_id}")
