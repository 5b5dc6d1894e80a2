/**
 * The wire contract: modeldock's inference.proto against the published KServe v2 /
 * Triton definitions as NVIDIA's tritonclient ships them (its generated descriptors).
 * Every message, field (name, number, type, repeated, map), enum value and RPC that
 * modeldock declares must be exactly the published one; modeldock may declare fewer.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import protobuf from 'protobufjs';
import { PROTO_FILE } from '../../src/api/grpc/grpc-server.js';
import { venvPython } from '../helpers/python.js';
import { REPO_ROOT } from '../helpers/paths.js';

interface Published {
  service: string;
  methods: Record<string, { input: string; output: string; streaming: boolean }>;
  messages: Record<string, Record<string, { number: number; type: string; repeated: boolean }>>;
  enums: Record<string, Record<string, number>>;
}

const name = (reflection: protobuf.ReflectionObject) => reflection.fullName.replace(/^\./, '');

function typeOf(field: protobuf.Field): string {
  const resolved = field.resolve().resolvedType;
  return resolved ? name(resolved) : field.type;
}

function collect(namespace: protobuf.NamespaceBase, types: protobuf.Type[], enums: protobuf.Enum[]): void {
  for (const nested of namespace.nestedArray) {
    if (nested instanceof protobuf.Type) types.push(nested);
    if (nested instanceof protobuf.Enum) enums.push(nested);
    if (nested instanceof protobuf.Namespace || nested instanceof protobuf.Type)
      collect(nested, types, enums);
  }
}

describe('inference.proto matches the published protocol', async () => {
  const { stdout } = await promisify(execFile)(venvPython('tritonclient'), [
    path.join(REPO_ROOT, 'test/python/dump_triton_proto.py'),
  ]);
  const published = JSON.parse(stdout) as Published;
  const root = new protobuf.Root();
  root.loadSync(PROTO_FILE, { keepCase: true });
  root.resolveAll();
  const types: protobuf.Type[] = [];
  const enums: protobuf.Enum[] = [];
  collect(root, types, enums);

  it('declares the messages it serves', () => {
    assert.ok(types.length >= 40, `${types.length} messages`);
  });

  for (const type of types) {
    it(`message ${name(type)}`, () => {
      const theirs = published.messages[name(type)];
      assert.ok(theirs, `${name(type)} is not a published message`);
      for (const field of type.fieldsArray) {
        const map = field instanceof protobuf.MapField ? `map<${field.keyType},${typeOf(field)}>` : undefined;
        assert.deepEqual(
          { number: field.id, type: map ?? typeOf(field), repeated: map ? false : field.repeated },
          theirs[field.name],
          `${name(type)}.${field.name}`,
        );
      }
    });
  }

  for (const enumeration of enums) {
    it(`enum ${name(enumeration)}`, () => {
      const theirs = published.enums[name(enumeration)];
      assert.ok(theirs, `${name(enumeration)} is not a published enum`);
      for (const [value, number] of Object.entries(enumeration.values)) {
        assert.equal(number, theirs[value], `${name(enumeration)}.${value}`);
      }
    });
  }

  it(`service ${published.service}: every RPC served is the published one`, () => {
    const service = root.lookupService(published.service);
    assert.equal(service.methodsArray.length, 11);
    for (const method of service.methodsArray) {
      method.resolve();
      assert.deepEqual(
        {
          input: name(method.resolvedRequestType!),
          output: name(method.resolvedResponseType!),
          streaming: Boolean(method.responseStream),
        },
        published.methods[method.name],
        method.name,
      );
    }
  });
});
