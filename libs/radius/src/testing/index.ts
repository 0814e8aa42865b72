// Test and benchmark helpers (FreeRADIUS as a peer). Production code never imports these.
export * from './freeradius';
