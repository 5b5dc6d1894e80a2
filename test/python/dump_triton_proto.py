"""The published KServe v2 / Triton gRPC definitions as tritonclient ships them
(generated from grpc_service.proto and model_config.proto), as JSON: every message's
fields (name, number, type, repeated, map) and every enum's values by full name, and the
service's methods. test/unit/grpc-proto.test.ts compares modeldock's inference.proto
with it."""
import json

from google.protobuf.descriptor import FieldDescriptor as F
from tritonclient.grpc import model_config_pb2, service_pb2

SCALARS = {
    F.TYPE_DOUBLE: "double", F.TYPE_FLOAT: "float", F.TYPE_INT64: "int64", F.TYPE_UINT64: "uint64",
    F.TYPE_INT32: "int32", F.TYPE_FIXED64: "fixed64", F.TYPE_FIXED32: "fixed32", F.TYPE_BOOL: "bool",
    F.TYPE_STRING: "string", F.TYPE_BYTES: "bytes", F.TYPE_UINT32: "uint32", F.TYPE_SFIXED32: "sfixed32",
    F.TYPE_SFIXED64: "sfixed64", F.TYPE_SINT32: "sint32", F.TYPE_SINT64: "sint64",
}
messages, enums = {}, {}


def type_of(field):
    if field.message_type is not None:
        return field.message_type.full_name
    if field.enum_type is not None:
        return field.enum_type.full_name
    return SCALARS[field.type]


def walk(message):
    fields = {}
    for field in message.fields:
        entry = field.message_type is not None and field.message_type.GetOptions().map_entry
        if entry:
            key, value = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
            fields[field.name] = {"number": field.number, "type": f"map<{type_of(key)},{type_of(value)}>", "repeated": False}
        else:
            repeated = field.label == F.LABEL_REPEATED
            fields[field.name] = {"number": field.number, "type": type_of(field), "repeated": repeated}
    messages[message.full_name] = fields
    for nested in message.nested_types:
        if not nested.GetOptions().map_entry:
            walk(nested)
    for enum in message.enum_types:
        enums[enum.full_name] = {v.name: v.number for v in enum.values}


for module in (service_pb2, model_config_pb2):
    for message in module.DESCRIPTOR.message_types_by_name.values():
        walk(message)
    for enum in module.DESCRIPTOR.enum_types_by_name.values():
        enums[enum.full_name] = {v.name: v.number for v in enum.values}
service = service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
methods = {
    m.name: {"input": m.input_type.full_name, "output": m.output_type.full_name, "streaming": m.server_streaming}
    for m in service.methods
}
print(json.dumps({"service": service.full_name, "methods": methods, "messages": messages, "enums": enums}))
