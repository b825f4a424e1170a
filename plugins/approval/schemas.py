"""Input schemas of the approval API (unknown fields are refused, messages translated)."""
from __future__ import annotations

from marshmallow import fields, validate

from core.schemas import Schema, length

INT32 = 2**31 - 1
_ID = {"strict": True, "validate": validate.Range(min=1, max=INT32)}


class FlowIn(Schema):
    key = fields.String(required=True, validate=validate.Regexp(r"^[a-z][a-z0-9_]{0,63}$"))
    name = fields.String(required=True, validate=length(200, 1))
    description = fields.String(load_default="", validate=length(2000))
    subject_type = fields.String(load_default=None, allow_none=True, validate=length(100))
    form = fields.Raw(load_default=list)
    nodes = fields.Raw(required=True)
    settings = fields.Dict(keys=fields.String(), load_default=dict)
    publish = fields.Boolean(load_default=False)


class RequestIn(Schema):
    flow_key = fields.String(required=True, validate=length(64, 1))
    form = fields.Dict(keys=fields.String(), load_default=dict)
    chosen = fields.Dict(keys=fields.String(), load_default=dict)
    title = fields.String(load_default=None, allow_none=True, validate=length(300))


class ActionIn(Schema):
    comment = fields.String(load_default="", validate=length(2000))


class TransferIn(ActionIn):
    user_id = fields.Integer(required=True, **_ID)


class AddApproverIn(ActionIn):
    user_id = fields.Integer(required=True, **_ID)
    position = fields.String(load_default="after", validate=validate.OneOf(("before", "after")))


class ReturnIn(ActionIn):
    node = fields.String(load_default="@initiator", validate=length(64, 1))


class ResubmitIn(Schema):
    form = fields.Dict(keys=fields.String(), load_default=None, allow_none=True)


class CommentIn(Schema):
    comment = fields.String(required=True, validate=length(2000, 1))


class DelegationIn(Schema):
    delegate_id = fields.Integer(required=True, **_ID)
    starts_at = fields.AwareDateTime(required=True)
    ends_at = fields.AwareDateTime(required=True)
    flow_keys = fields.List(fields.String(validate=length(64, 1)), load_default=None, allow_none=True)
