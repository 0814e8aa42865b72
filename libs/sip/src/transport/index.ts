export * from './types';
export * from './layer';
export * from './response-target';
export { defaultFramer, parseSip } from './framing';
export type { Framer, FramerFactory, FramerSink } from './connection';
export { FakeClock } from './fake-clock';
export { UdpSendThread, loadUdpSenderAddon } from './udp-sender';
