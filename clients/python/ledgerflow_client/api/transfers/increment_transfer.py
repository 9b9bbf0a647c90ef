from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.error_out import ErrorOut
from ...models.increment_create import IncrementCreate
from ...models.transfer_out import TransferOut
from ...types import UNSET, Unset
from typing import cast



def _get_kwargs(
    transfer_id: str,
    *,
    body: IncrementCreate,
    idempotency_key: None | str | Unset = UNSET,

) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(idempotency_key, Unset):
        headers["Idempotency-Key"] = idempotency_key



    

    

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/v1/transfers/{transfer_id}/increment".format(transfer_id=quote(str(transfer_id), safe=""),),
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ErrorOut | TransferOut | None:
    if response.status_code == 200:
        response_200 = TransferOut.from_dict(response.json())



        return response_200

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
    transfer_id: str,
    *,
    client: AuthenticatedClient,
    body: IncrementCreate,
    idempotency_key: None | str | Unset = UNSET,

) -> Response[ErrorOut | TransferOut]:
    """ Increment Transfer

     Raise an open hold by `amount` when the funds are there (402 `insufficient_funds`
    otherwise); `amount` shows what is held so far.

    Args:
        transfer_id (str):
        idempotency_key (None | str | Unset): Any printable ASCII; the same key and parameters
            replay the first answer.
        body (IncrementCreate): `POST /v1/transfers/{id}/increment`: raise an open hold by
            `amount`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorOut | TransferOut]
     """


    kwargs = _get_kwargs(
        transfer_id=transfer_id,
body=body,
idempotency_key=idempotency_key,

    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)

def sync(
    transfer_id: str,
    *,
    client: AuthenticatedClient,
    body: IncrementCreate,
    idempotency_key: None | str | Unset = UNSET,

) -> ErrorOut | TransferOut | None:
    """ Increment Transfer

     Raise an open hold by `amount` when the funds are there (402 `insufficient_funds`
    otherwise); `amount` shows what is held so far.

    Args:
        transfer_id (str):
        idempotency_key (None | str | Unset): Any printable ASCII; the same key and parameters
            replay the first answer.
        body (IncrementCreate): `POST /v1/transfers/{id}/increment`: raise an open hold by
            `amount`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorOut | TransferOut
     """


    return sync_detailed(
        transfer_id=transfer_id,
client=client,
body=body,
idempotency_key=idempotency_key,

    ).parsed

async def asyncio_detailed(
    transfer_id: str,
    *,
    client: AuthenticatedClient,
    body: IncrementCreate,
    idempotency_key: None | str | Unset = UNSET,

) -> Response[ErrorOut | TransferOut]:
    """ Increment Transfer

     Raise an open hold by `amount` when the funds are there (402 `insufficient_funds`
    otherwise); `amount` shows what is held so far.

    Args:
        transfer_id (str):
        idempotency_key (None | str | Unset): Any printable ASCII; the same key and parameters
            replay the first answer.
        body (IncrementCreate): `POST /v1/transfers/{id}/increment`: raise an open hold by
            `amount`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorOut | TransferOut]
     """


    kwargs = _get_kwargs(
        transfer_id=transfer_id,
body=body,
idempotency_key=idempotency_key,

    )

    response = await client.get_async_httpx_client().request(
        **kwargs
    )

    return _build_response(client=client, response=response)

async def asyncio(
    transfer_id: str,
    *,
    client: AuthenticatedClient,
    body: IncrementCreate,
    idempotency_key: None | str | Unset = UNSET,

) -> ErrorOut | TransferOut | None:
    """ Increment Transfer

     Raise an open hold by `amount` when the funds are there (402 `insufficient_funds`
    otherwise); `amount` shows what is held so far.

    Args:
        transfer_id (str):
        idempotency_key (None | str | Unset): Any printable ASCII; the same key and parameters
            replay the first answer.
        body (IncrementCreate): `POST /v1/transfers/{id}/increment`: raise an open hold by
            `amount`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorOut | TransferOut
     """


    return (await asyncio_detailed(
        transfer_id=transfer_id,
client=client,
body=body,
idempotency_key=idempotency_key,

    )).parsed
