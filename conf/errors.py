"""The root of every error pinstream raises on purpose."""


class PinstreamError(Exception):
    """Base class: catch this to catch any pinstream error."""


class ConfigError(PinstreamError):
    """A config file or value is wrong; the message names the key's path."""


class StorageError(PinstreamError):
    """A storage location (a local path, s3://, gs://) cannot be opened."""
