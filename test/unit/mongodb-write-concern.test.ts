import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { durabilityDefaults, writeConcernRefusal } from '../../src/store/mongodb/write-concern.js';

describe('MongoDB durability defaults', () => {
  it('asks for w: "majority", j: true and retryable writes when the URL says nothing', () => {
    assert.deepEqual(durabilityDefaults('mongodb://db:27017/modeldock'), {
      writeConcern: { w: 'majority', journal: true },
      retryWrites: true,
    });
  });

  it('leaves to the URL what it sets, whatever the case of the option names', () => {
    assert.deepEqual(durabilityDefaults('mongodb://a,b/modeldock?W=2&retryWrites=false'), {
      writeConcern: { journal: true },
    });
    assert.deepEqual(durabilityDefaults('mongodb://a/m?w=1&journal=false&retrywrites=true'), {});
  });
});

describe('which servers cannot honour the write concern', () => {
  const replicaSet = { mongos: false, setName: 'rs0', hosts: ['a:27017', 'b:27017', 'c:27017'] };

  it('accepts majority on a replica set, a mongos and a standalone mongod (a majority of one)', () => {
    assert.equal(writeConcernRefusal({ w: 'majority', journal: true }, replicaSet), undefined);
    assert.equal(writeConcernRefusal({ w: 'majority', journal: true }, { mongos: true }), undefined);
    assert.equal(writeConcernRefusal({ w: 'majority', journal: true }, { mongos: false }), undefined);
  });

  it('refuses more acknowledging members than the replica set or a standalone has', () => {
    assert.match(writeConcernRefusal({ w: 4, journal: true }, replicaSet)!, /needs 4 members .* rs0 has 3/);
    assert.equal(writeConcernRefusal({ w: 3, journal: true }, replicaSet), undefined);
    assert.match(writeConcernRefusal({ w: 2, journal: true }, { mongos: false })!, /standalone mongod/);
  });

  it('refuses FerretDB unless the URL accepts its single-server guarantee with w=1', () => {
    const ferret = { mongos: false, ferretdbVersion: 'v1.24.2' };
    assert.match(writeConcernRefusal({ w: 'majority', journal: true }, ferret)!, /ignores write concerns/);
    assert.equal(writeConcernRefusal({ w: 1, journal: true }, ferret), undefined);
  });

  it('refuses w=0 on any server', () => {
    assert.match(writeConcernRefusal({ w: 0, journal: undefined }, replicaSet)!, /no acknowledgement/);
  });
});
