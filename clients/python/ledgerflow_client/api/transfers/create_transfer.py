from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.error_out import ErrorOut
from ...models.transfer_create import TransferCreate
from ...models.transfer_out import TransferOut
from ...types import UNSET, Unset
from typing import cast



def _get_kwargs(
    *,
    body: TransferCreate,
    idempotency_key: None | str | Unset = UNSET,

) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(idempotency_key, Unset):
        headers["Idempotency-Key"] = idempotency_key



    

    

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/v1/transfers",
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ErrorOut | TransferOut | None:
    if response.status_code == 201:
        response_201 = TransferOut.from_dict(response.json())



        return response_201

    if response.status_code == 202:
        response_202 = TransferOut.from_dict(response.json())



        return response_202

    if response.status_code == 400:
        response_400 = ErrorOut.from_dict(response.json())



        return response_400

    if response.status_code == 401:
        response_401 = ErrorOut.from_dict(response.json())



        return response_401

    if response.status_code == 402:
        response_402 = ErrorOut.from_dict(response.json())



        return response_402

    if response.status_code == 404:
        response_404 = ErrorOut.from_dict(response.json())



        return response_404

    if response.status_code == 409:
        response_409 = ErrorOut.from_dict(response.json())



        return response_409

    if response.status_code == 413:
        response_413 = ErrorOut.from_dict(response.json())



        return response_413

    if response.status_code == 429:
        response_429 = ErrorOut.from_dict(response.json())



        return response_429

    if response.status_code == 500:
        response_500 = ErrorOut.from_dict(response.json())



        return response_500

    if response.status_code == 502:
        response_502 = ErrorOut.from_dict(response.json())



        return response_502

    if response.status_code == 503:
        response_503 = ErrorOut.from_dict(response.json())



        return response_503

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[ErrorOut | TransferOut]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    body: TransferCreate,
    idempotency_key: None | str | Unset = UNSET,

) -> Response[ErrorOut | TransferOut]:
    """ Create Transfer

     Move money between two accounts of the same currency.

    Both accounts on one shard: one local transaction, 201 `posted`. On two shards: the funds
    are reserved synchronously and a saga settles the rest; 201 `posted` when it finished
    within the short wait, else 202 `processing`. With `"pending": true`: a hold, 201
    `pending` with `expires_at` (across shards 202 `processing` until the payee's shard shows
    it pending), until captured, voided or expired.
    Above the debit account's `review_above` (one shard or two): 202 `requires_review`, its
    funds held until approved, rejected, or rejected when its review times out.

    Args:
        idempotency_key (None | str | Unset): Any printable ASCII; the same key and parameters
            replay the first answer.
        body (TransferCreate): `POST /v1/transfers`: move `amount` minor units from the debit to
            the credit account.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorOut | TransferOut]
     """


    kwargs = _get_kwargs(
        body=body,
idempotency_key=idempotency_key,

    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)

def sync(
    *,
    client: AuthenticatedClient,
    body: TransferCreate,
    idempotency_key: None | str | Unset = UNSET,

) -> ErrorOut | TransferOut | None:
    """ Create Transfer

     Move money between two accounts of the same currency.

    Both accounts on one shard: one local transaction, 201 `posted`. On two shards: the funds
    are reserved synchronously and a saga settles the rest; 201 `posted` when it finished
    within the short wait, else 202 `processing`. With `"pending": true`: a hold, 201
    `pending` with `expires_at` (across shards 202 `processing` until the payee's shard shows
    it pending), until captured, voided or expired.
    Above the debit account's `review_above` (one shard or two): 202 `requires_review`, its
    funds held until approved, rejected, or rejected when its review times out.

    Args:
        idempotency_key (None | str | Unset): Any printable ASCII; the same key and parameters
            replay the first answer.
        body (TransferCreate): `POST /v1/transfers`: move `amount` minor units from the debit to
            the credit account.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorOut | TransferOut
     """


    return sync_detailed(
        client=client,
body=body,
idempotency_key=idempotency_key,

    ).parsed

async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    body: TransferCreate,
    idempotency_key: None | str | Unset = UNSET,

) -> Response[ErrorOut | TransferOut]:
    """ Create Transfer

     Move money between two accounts of the same currency.

    Both accounts on one shard: one local transaction, 201 `posted`. On two shards: the funds
    are reserved synchronously and a saga settles the rest; 201 `posted` when it finished
    within the short wait, else 202 `processing`. With `"pending": true`: a hold, 201
    `pending` with `expires_at` (across shards 202 `processing` until the payee's shard shows
    it pending), until captured, voided or expired.
    Above the debit account's `review_above` (one shard or two): 202 `requires_review`, its
    funds held until approved, rejected, or rejected when its review times out.

    Args:
        idempotency_key (None | str | Unset): Any printable ASCII; the same key and parameters
            replay the first answer.
        body (TransferCreate): `POST /v1/transfers`: move `amount` minor units from the debit to
            the credit account.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorOut | TransferOut]
     """


    kwargs = _get_kwargs(
        body=body,
idempotency_key=idempotency_key,

    )

    response = await client.get_async_httpx_client().request(
        **kwargs
    )

    return _build_response(client=client, response=response)

async def asyncio(
    *,
    client: AuthenticatedClient,
    body: TransferCreate,
    idempotency_key: None | str | Unset = UNSET,

) -> ErrorOut | TransferOut | None:
    """ Create Transfer

     Move money between two accounts of the same currency.

    Both accounts on one shard: one local transaction, 201 `posted`. On two shards: the funds
    are reserved synchronously and a saga settles the rest; 201 `posted` when it finished
    within the short wait, else 202 `processing`. With `"pending": true`: a hold, 201
    `pending` with `expires_at` (across shards 202 `processing` until the payee's shard shows
    it pending), until captured, voided or expired.
    Above the debit account's `review_above` (one shard or two): 202 `requires_review`, its
    funds held until approved, rejected, or rejected when its review times out.

    Args:
        idempotency_key (None | str | Unset): Any printable ASCII; the same key and parameters
            replay the first answer.
        body (TransferCreate): `POST /v1/transfers`: move `amount` minor units from the debit to
            the credit account.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorOut | TransferOut
     """


    return (await asyncio_detailed(
        client=client,
body=body,
idempotency_key=idempotency_key,

    )).parsed
