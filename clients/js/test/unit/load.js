// Loads tidings.js (a classic script that defines globalThis.Tidings) for the tests.
import '../../tidings.js';

export const Tidings = globalThis.Tidings;
export const internals = Tidings.internals;
