// Prints the minified + gzipped size of tidings.js (the joined parts the server serves) in
// bytes; exits 1 over the 8 KiB budget.
import { gzipSync } from 'node:zlib';
import { minify } from 'terser';
import { joined } from '../parts.mjs';

const BUDGET = 8 * 1024;
const src = await joined();
const { code } = await minify(src, { compress: { passes: 2 }, mangle: true, format: { comments: false } });
const gz = gzipSync(code, { level: 9 }).length;
console.log(`tidings.js: ${src.length} bytes source, ${code.length} minified, ${gz} min+gz (budget ${BUDGET})`);
if (gz > BUDGET) {
  console.error(`over budget by ${gz - BUDGET} bytes`);
  process.exit(1);
}
