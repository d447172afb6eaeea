"""Names that identify the FineTuneJob API on the cluster.

Kept apart from the models so that the operator, the trainer and the CRD generator can refer to the
API's identity (group, version, plural, ...) without importing any model.
"""

from typing import Final

GROUP: Final = "finetune.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "FineTuneJob"
PLURAL: Final = "finetunejobs"
SINGULAR: Final = "finetunejob"
SHORT_NAMES: Final = ("ftj",)
CATEGORIES: Final = ("finetune",)
CRD_NAME: Final = f"{PLURAL}.{GROUP}"

# Object-storage schemes a URI field accepts. s3/gs/az need credentials (spec.storage.secretRef);
# file:// is a path inside the container, pvc://<claim>/<path> a path on a PersistentVolumeClaim,
# hf://<org>/<name> a model or dataset on the Hugging Face Hub.
URI_SCHEMES: Final = ("s3", "gs", "az", "file", "pvc", "hf")
CREDENTIAL_SCHEMES: Final = ("s3", "gs", "az")

IMMUTABLE_SUFFIX: Final = "is immutable; delete and recreate the job to change it"
