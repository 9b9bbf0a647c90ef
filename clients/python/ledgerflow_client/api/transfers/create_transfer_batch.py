from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.batch_create import BatchCreate
from ...models.batch_out import BatchOut
from ...models.error_out import ErrorOut
from ...types import UNSET, Unset
from typing import cast



def _get_kwargs(
    *,
    body: BatchCreate,
    idempotency_key: None | str | Unset = UNSET,

) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(idempotency_key, Unset):
        headers["Idempotency-Key"] = idempotency_key



    

    

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/v1/transfers/batch",
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> BatchOut | ErrorOut | None:
    if response.status_code == 200:
        response_200 = BatchOut.from_dict(response.json())



        return response_200

    if response.status_code == 400:
        response_400 = ErrorOut.from_dict(response.json())



        return response_400

    if response.status_code == 401:
        response_401 = ErrorOut.from_dict(response.json())



        return response_401

    if response.status_code == 413:
        response_413 = ErrorOut.from_dict(response.json())



        return response_413

    if response.status_code == 429:
        response_429 = ErrorOut.from_dict(response.json())



        return response_429

    if response.status_code == 500:
        response_500 = ErrorOut.from_dict(response.json())



        return response_500

    if response.status_code == 503:
        response_503 = ErrorOut.from_dict(response.json())



        return response_503

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[BatchOut | ErrorOut]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    body: BatchCreate,
    idempotency_key: None | str | Unset = UNSET,

) -> Response[BatchOut | ErrorOut]:
    """ Create Transfer Batch

     Make up to a thousand transfers in one request; 200 with one outcome per item.

    Each item is answered as a single `POST /v1/transfers` would be (`status` and the
    `transfer`, or the `error`). Without `atomic`, each item stands alone. With `atomic`,
    every item is posted or none is, across shards too: when one is refused, it answers its
    error and every other `batch_leg_refused`, and no money moved. An atomic batch that has
    not settled within the short wait answers 202 `processing` items; each transfer then
    reaches `posted` (all of them) or `failed` (all of them). Bad input refuses the whole
    batch with 400, naming the item (`transfers[17].amount`).

    Args:
        idempotency_key (None | str | Unset): Any printable ASCII; the same key and parameters
            replay the first answer.
        body (BatchCreate): `POST /v1/transfers/batch`: up to a thousand transfers in one request.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[BatchOut | ErrorOut]
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
    body: BatchCreate,
    idempotency_key: None | str | Unset = UNSET,

) -> BatchOut | ErrorOut | None:
    """ Create Transfer Batch

     Make up to a thousand transfers in one request; 200 with one outcome per item.

    Each item is answered as a single `POST /v1/transfers` would be (`status` and the
    `transfer`, or the `error`). Without `atomic`, each item stands alone. With `atomic`,
    every item is posted or none is, across shards too: when one is refused, it answers its
    error and every other `batch_leg_refused`, and no money moved. An atomic batch that has
    not settled within the short wait answers 202 `processing` items; each transfer then
    reaches `posted` (all of them) or `failed` (all of them). Bad input refuses the whole
    batch with 400, naming the item (`transfers[17].amount`).

    Args:
        idempotency_key (None | str | Unset): Any printable ASCII; the same key and parameters
            replay the first answer.
        body (BatchCreate): `POST /v1/transfers/batch`: up to a thousand transfers in one request.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        BatchOut | ErrorOut
     """


    return sync_detailed(
        client=client,
body=body,
idempotency_key=idempotency_key,

    ).parsed

async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    body: BatchCreate,
    idempotency_key: None | str | Unset = UNSET,

) -> Response[BatchOut | ErrorOut]:
    """ Create Transfer Batch

     Make up to a thousand transfers in one request; 200 with one outcome per item.

    Each item is answered as a single `POST /v1/transfers` would be (`status` and the
    `transfer`, or the `error`). Without `atomic`, each item stands alone. With `atomic`,
    every item is posted or none is, across shards too: when one is refused, it answers its
    error and every other `batch_leg_refused`, and no money moved. An atomic batch that has
    not settled within the short wait answers 202 `processing` items; each transfer then
    reaches `posted` (all of them) or `failed` (all of them). Bad input refuses the whole
    batch with 400, naming the item (`transfers[17].amount`).

    Args:
        idempotency_key (None | str | Unset): Any printable ASCII; the same key and parameters
            replay the first answer.
        body (BatchCreate): `POST /v1/transfers/batch`: up to a thousand transfers in one request.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[BatchOut | ErrorOut]
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
    body: BatchCreate,
    idempotency_key: None | str | Unset = UNSET,

) -> BatchOut | ErrorOut | None:
    """ Create Transfer Batch

     Make up to a thousand transfers in one request; 200 with one outcome per item.

    Each item is answered as a single `POST /v1/transfers` would be (`status` and the
    `transfer`, or the `error`). Without `atomic`, each item stands alone. With `atomic`,
    every item is posted or none is, across shards too: when one is refused, it answers its
    error and every other `batch_leg_refused`, and no money moved. An atomic batch that has
    not settled within the short wait answers 202 `processing` items; each transfer then
    reaches `posted` (all of them) or `failed` (all of them). Bad input refuses the whole
    batch with 400, naming the item (`transfers[17].amount`).

    Args:
        idempotency_key (None | str | Unset): Any printable ASCII; the same key and parameters
            replay the first answer.
        body (BatchCreate): `POST /v1/transfers/batch`: up to a thousand transfers in one request.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        BatchOut | ErrorOut
     """


    return (await asyncio_detailed(
        client=client,
body=body,
idempotency_key=idempotency_key,

    )).parsed
