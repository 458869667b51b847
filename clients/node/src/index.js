export { Client, Result } from './client.js';
export {
  BrokerUnreachableError,
  CancelledError,
  CircuitOpenError,
  InvalidError,
  Reject,
  RejectedError,
  ShutdownError,
  TaskError,
  TimeoutError,
  WireError,
  YardError,
} from './errors.js';
export { Subscription } from './subscription.js';
export { Worker } from './worker.js';
export { decodeBody, decodeMessage, encodeBody, encodeMessage } from './wire.js';
