// Glimpse's public API: everything a user imports comes from here.
export * from './tensor/index.js';
export * as io from './io/index.js';
