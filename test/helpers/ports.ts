export { freeLoopbackPort as freePort } from '../../src/runtime/loopback-port.js';
