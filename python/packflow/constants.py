"""Names packflow looks for in the environment and in a project directory."""

BACKEND_CONFIG_PATH_ENV_VAR_NAME = "BACKEND_CONFIG_FILE_PATH"
PACKAGING_CONFIG_NAME = "packflow.yaml"
REQUIREMENTS_TEXT_NAME = "requirements.txt"
LOG_LEVEL_ENV_VAR_NAME = "PACKFLOW_LOG_LEVEL"
#: The manifest ``packflow export`` writes into every archive: each file with its SHA-256.
ARCHIVE_MANIFEST_NAME = "packflow.lock"
