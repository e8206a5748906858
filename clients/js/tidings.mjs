// ES module entry point. tidings.js is the one authoritative source: a classic script that
// defines globalThis.Tidings (so the server can serve it for a plain <script> tag). Importing
// it for its side effect and re-exporting the global keeps a single copy of the code.
import './tidings.js';

const Tidings = globalThis.Tidings;
export { Tidings };
export default Tidings;
