"""The product's error root and its few specific leaves, each with a CLI exit code and HTTP status."""

from __future__ import annotations


class FedpriceError(Exception):
    """Root of every error the product raises on purpose."""

    exit_code = 1
    http_status = 500


class ConfigError(FedpriceError):
    """A setting is missing, malformed or unsafe."""

    exit_code = 78
    http_status = 500


class InvalidDataError(FedpriceError):
    """Input data failed validation; the message names file, row and field."""

    exit_code = 65
    http_status = 422


class BudgetExhaustedError(FedpriceError):
    """The next training round would take a shop past its privacy budget."""

    exit_code = 75
    http_status = 409


class ModelNotReadyError(FedpriceError):
    """No verified model is available."""

    exit_code = 69
    http_status = 503


class BadSignatureError(FedpriceError):
    """A model, ciphertext or manifest failed verification."""

    exit_code = 77
    http_status = 500


class AuthenticationError(FedpriceError):
    """A request carried no credentials or credentials that are not valid."""

    exit_code = 77
    http_status = 401


class PermissionDeniedError(FedpriceError):
    """Valid credentials without the permission (scope) the action needs."""

    exit_code = 77
    http_status = 403


class NotFoundError(InvalidDataError):
    """A request named something that does not exist (e.g. an unknown shop); the message names the field."""

    http_status = 404
