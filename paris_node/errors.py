"""Typed errors shared by every layer. User-facing messages name the problem and the fix."""


class ParisError(Exception):
    """Base class for every error paris-node raises on purpose."""


class UsageError(ParisError, ValueError):
    """Bad user input (a flag, a file, a path); the message says what to change."""


class IdentityError(ParisError):
    """The node key file is missing, malformed or unsafe."""


class RecordError(ParisError, ValueError):
    """A signed record failed to decode or verify. Subclasses name the cause."""


class MalformedRecord(RecordError):
    """Not canonical JSON, or not an object."""


class SchemaError(RecordError):
    """A field is missing or has the wrong type."""


class RecordTooLarge(RecordError):
    """The encoded record is over the size cap for its kind."""


class BadSignature(RecordError):
    """The signature does not verify under the stated signer key."""


class FutureRecord(RecordError):
    """issued_ms is further in the future than the allowed clock skew."""


class UnknownKind(RecordError):
    """The record kind is not one this version understands."""


class UnsupportedVersion(RecordError):
    """The record schema version is not one this version understands."""


class WrongContext(RecordError):
    """A valid record for another run or of another kind than the reader asked for."""
