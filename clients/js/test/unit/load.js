// Loads the client (classic scripts that define globalThis.Tidings) for the tests.
import '../../tidings.mjs';

export const Tidings = globalThis.Tidings;
export const internals = Tidings.internals;
