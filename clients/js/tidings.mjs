// ES module entry point. The client is four classic scripts (parts.mjs lists them) that
// together define globalThis.Tidings, so the server can serve them joined for a plain
// <script> tag. Importing them in order for their side effect and re-exporting the global
// keeps one copy of the code.
import './src/protocol.js';
import './src/transports.js';
import './src/link.js';
import './src/client.js';

const Tidings = globalThis.Tidings;
export { Tidings };
export default Tidings;
