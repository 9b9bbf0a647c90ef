from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.account_out import AccountOut
from ...models.error_out import ErrorOut
from ...models.limits_in import LimitsIn
from ...types import UNSET, Unset
from typing import cast



def _get_kwargs(
    account_id: str,
    *,
    body: LimitsIn,
    idempotency_key: None | str | Unset = UNSET,

) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(idempotency_key, Unset):
        headers["Idempotency-Key"] = idempotency_key



    

    

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/v1/accounts/{account_id}/limits".format(account_id=quote(str(account_id), safe=""),),
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> AccountOut | ErrorOut | None:
    if response.status_code == 200:
        response_200 = AccountOut.from_dict(response.json())



        return response_200

    if response.status_code == 400:
        response_400 = ErrorOut.from_dict(response.json())



        return response_400

    if response.status_code == 401:
        response_401 = ErrorOut.from_dict(response.json())



        return response_401

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

    if response.status_code == 503:
        response_503 = ErrorOut.from_dict(response.json())



        return response_503

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[AccountOut | ErrorOut]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    account_id: str,
    *,
    client: AuthenticatedClient,
    body: LimitsIn,
    idempotency_key: None | str | Unset = UNSET,

) -> Response[AccountOut | ErrorOut]:
    """ Set Account Limits

     Replace the account's limits (a field left out removes that limit). They apply from
    the next movement on: a balance already past a new `max_balance` or daily limit stays
    as it is; a floor the account is overdrawn past is 409 `limits_below_balance`.

    Args:
        account_id (str):
        idempotency_key (None | str | Unset): Any printable ASCII; the same key and parameters
            replay the first answer.
        body (LimitsIn): An account's limits; an absent or null field sets no such limit.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[AccountOut | ErrorOut]
     """


    kwargs = _get_kwargs(
        account_id=account_id,
body=body,
idempotency_key=idempotency_key,

    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)

def sync(
    account_id: str,
    *,
    client: AuthenticatedClient,
    body: LimitsIn,
    idempotency_key: None | str | Unset = UNSET,

) -> AccountOut | ErrorOut | None:
    """ Set Account Limits

     Replace the account's limits (a field left out removes that limit). They apply from
    the next movement on: a balance already past a new `max_balance` or daily limit stays
    as it is; a floor the account is overdrawn past is 409 `limits_below_balance`.

    Args:
        account_id (str):
        idempotency_key (None | str | Unset): Any printable ASCII; the same key and parameters
            replay the first answer.
        body (LimitsIn): An account's limits; an absent or null field sets no such limit.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        AccountOut | ErrorOut
     """


    return sync_detailed(
        account_id=account_id,
client=client,
body=body,
idempotency_key=idempotency_key,

    ).parsed

async def asyncio_detailed(
    account_id: str,
    *,
    client: AuthenticatedClient,
    body: LimitsIn,
    idempotency_key: None | str | Unset = UNSET,

) -> Response[AccountOut | ErrorOut]:
    """ Set Account Limits

     Replace the account's limits (a field left out removes that limit). They apply from
    the next movement on: a balance already past a new `max_balance` or daily limit stays
    as it is; a floor the account is overdrawn past is 409 `limits_below_balance`.

    Args:
        account_id (str):
        idempotency_key (None | str | Unset): Any printable ASCII; the same key and parameters
            replay the first answer.
        body (LimitsIn): An account's limits; an absent or null field sets no such limit.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[AccountOut | ErrorOut]
     """


    kwargs = _get_kwargs(
        account_id=account_id,
body=body,
idempotency_key=idempotency_key,

    )

    response = await client.get_async_httpx_client().request(
        **kwargs
    )

    return _build_response(client=client, response=response)

async def asyncio(
    account_id: str,
    *,
    client: AuthenticatedClient,
    body: LimitsIn,
    idempotency_key: None | str | Unset = UNSET,

) -> AccountOut | ErrorOut | None:
    """ Set Account Limits

     Replace the account's limits (a field left out removes that limit). They apply from
    the next movement on: a balance already past a new `max_balance` or daily limit stays
    as it is; a floor the account is overdrawn past is 409 `limits_below_balance`.

    Args:
        account_id (str):
        idempotency_key (None | str | Unset): Any printable ASCII; the same key and parameters
            replay the first answer.
        body (LimitsIn): An account's limits; an absent or null field sets no such limit.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        AccountOut | ErrorOut
     """


    return (await asyncio_detailed(
        account_id=account_id,
client=client,
body=body,
idempotency_key=idempotency_key,

    )).parsed
