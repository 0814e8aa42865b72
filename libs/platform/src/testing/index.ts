// Test-only helpers. Not exported from the platform's main index: production
// code never imports these.
export * from './infra';
export * from './ports';
export * from './until';
