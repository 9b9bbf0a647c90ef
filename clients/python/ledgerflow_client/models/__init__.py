""" Contains all the data models used in inputs/outputs """

from .account_create import AccountCreate
from .account_create_metadata import AccountCreateMetadata
from .account_out import AccountOut
from .account_out_metadata import AccountOutMetadata
from .account_status import AccountStatus
from .availability_out import AvailabilityOut
from .balance_at_out import BalanceAtOut
from .balance_out import BalanceOut
from .batch_create import BatchCreate
from .batch_item import BatchItem
from .batch_item_metadata import BatchItemMetadata
from .batch_item_out import BatchItemOut
from .batch_out import BatchOut
from .capture_create import CaptureCreate
from .capture_out import CaptureOut
from .currency import Currency
from .entry_out import EntryOut
from .error_code import ErrorCode
from .error_detail import ErrorDetail
from .error_out import ErrorOut
from .error_type import ErrorType
from .event_data import EventData
from .event_out import EventOut
from .event_type import EventType
from .healthz_response_healthz import HealthzResponseHealthz
from .increment_create import IncrementCreate
from .limits_in import LimitsIn
from .limits_out import LimitsOut
from .list_out_account_out import ListOutAccountOut
from .list_out_availability_out import ListOutAvailabilityOut
from .list_out_entry_out import ListOutEntryOut
from .list_out_event_out import ListOutEventOut
from .list_out_transfer_out import ListOutTransferOut
from .normal_balance import NormalBalance
from .ready_out import ReadyOut
from .saga_out import SagaOut
from .saga_step import SagaStep
from .transfer_create import TransferCreate
from .transfer_create_metadata import TransferCreateMetadata
from .transfer_out import TransferOut
from .transfer_out_metadata import TransferOutMetadata
from .transfer_status import TransferStatus

__all__ = (
    "AccountCreate",
    "AccountCreateMetadata",
    "AccountOut",
    "AccountOutMetadata",
    "AccountStatus",
    "AvailabilityOut",
    "BalanceAtOut",
    "BalanceOut",
    "BatchCreate",
    "BatchItem",
    "BatchItemMetadata",
    "BatchItemOut",
    "BatchOut",
    "CaptureCreate",
    "CaptureOut",
    "Currency",
    "EntryOut",
    "ErrorCode",
    "ErrorDetail",
    "ErrorOut",
    "ErrorType",
    "EventData",
    "EventOut",
    "EventType",
    "HealthzResponseHealthz",
    "IncrementCreate",
    "LimitsIn",
    "LimitsOut",
    "ListOutAccountOut",
    "ListOutAvailabilityOut",
    "ListOutEntryOut",
    "ListOutEventOut",
    "ListOutTransferOut",
    "NormalBalance",
    "ReadyOut",
    "SagaOut",
    "SagaStep",
    "TransferCreate",
    "TransferCreateMetadata",
    "TransferOut",
    "TransferOutMetadata",
    "TransferStatus",
)
