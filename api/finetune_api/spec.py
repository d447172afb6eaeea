"""FineTuneJobSpec: the desired state, and `parse_spec`, the one way components read a spec.

The operator parses what the API server stored, the trainer parses the JSON the operator hands it
(`FINETUNE_JOB_SPEC`), and both get the same defaults and the same refusals as `kubectl apply`.
"""

from typing import Annotated, Any

from pydantic import Field, ValidationError

from finetune_api.base import ApiModel
from finetune_api.contract import DEFAULT_CHECKPOINT_SUBDIR
from finetune_api.errors import SpecError, describe_validation_error
from finetune_api.learning import Dataset, Model, Training, section
from finetune_api.runtime import Checkpoint, Output, Resources, RunPolicy, Storage
from finetune_api.spec_rules import SPEC_RULES


class FineTuneJobSpec(ApiModel):
    """Desired state of a FineTuneJob: which model to fine-tune on which data, how, and where it runs."""

    RULES = SPEC_RULES

    model: Model = Field(
        description="The pretrained model to start from and how it is adapted (full, frozen, LoRA)."
    )
    dataset: Dataset = Field(description="Training, validation and test data and the record fields to read.")
    training: Training = section(
        Training, "Optimisation hyperparameters, precision, evaluation and early stopping."
    )
    resources: Resources = section(
        Resources, "Workers, GPUs, CPU and memory per worker, and where the workers may be scheduled."
    )
    checkpoint: Checkpoint = section(Checkpoint, "Where and how often resumable checkpoints are committed.")
    output: Output = Field(description="Where the final model is written and in which form.")
    storage: Storage = section(Storage, "Object-storage credentials and endpoint.")
    image: Annotated[str, Field(min_length=1, max_length=512, pattern=r"^\S+$")] | None = Field(
        default=None, description="Trainer container image. Absent uses the operator's default trainer image."
    )
    run_policy: RunPolicy = section(
        RunPolicy, "Restarts, deadlines, clean-up, suspension and shutdown grace."
    )

    @property
    def effective_checkpoint_uri(self) -> str:
        """checkpoint.uri, or <output.uri>/checkpoints when unset."""
        if self.checkpoint.uri is not None:
            return self.checkpoint.uri
        return f"{self.output.uri.rstrip('/')}/{DEFAULT_CHECKPOINT_SUBDIR}"


def parse_spec(data: Any, *, path: str = "spec") -> FineTuneJobSpec:
    """Validate a Kubernetes-style (camelCase) spec dict and fill in every default.

    Raises SpecError whose message names each offending field, e.g.
    "spec.training.learningRate: must be greater than 0".
    """
    try:
        return FineTuneJobSpec.model_validate(data)
    except ValidationError as error:
        raise SpecError(describe_validation_error(error, prefix=path)) from None


def spec_from_document(document: Any) -> FineTuneJobSpec:
    """Parse either a whole FineTuneJob manifest (with kind and spec) or a bare spec."""
    if isinstance(document, dict) and "spec" in document and ("kind" in document or "apiVersion" in document):
        return parse_spec(document["spec"])
    return parse_spec(document)
