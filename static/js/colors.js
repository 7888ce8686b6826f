/** Colour scales: TFP's diverging orange–grey–blue for binary/regression, a palette for classes. */

/** @typedef {[number, number, number]} RGB */

export const NEGATIVE = '#f59322';
export const MIDDLE = '#e8eaeb';
export const POSITIVE = '#0877bd';

/** Categorical palette for multi-class (Tableau 10, readable on the light background). */
export const CLASS_COLORS = [
  '#0877bd', '#f59322', '#2ca02c', '#d62728', '#9467bd',
  '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf',
];

/**
 * Parse "#rrggbb" into an RGB triple.
 * @param {string} hex
 * @returns {RGB}
 */
export function hexToRgb(hex) {
  const value = parseInt(hex.slice(1), 16);
  return [(value >> 16) & 255, (value >> 8) & 255, value & 255];
}

const NEG_RGB = hexToRgb(NEGATIVE);
const MID_RGB = hexToRgb(MIDDLE);
const POS_RGB = hexToRgb(POSITIVE);

/** Shades in the diverging lookup table; a heatmap pixel is one table read, not a blend. */
export const SHADES = 256;

/** Packed RGB per shade, from -1 (index 0) to +1 (index SHADES-1). */
const DIVERGING_LUT = (() => {
  const lut = new Uint8ClampedArray(SHADES * 3);
  for (let i = 0; i < SHADES; i++) {
    const t = (i / (SHADES - 1)) * 2 - 1;
    const [from, to, f] = t < 0 ? [MID_RGB, NEG_RGB, -t] : [MID_RGB, POS_RGB, t];
    for (let c = 0; c < 3; c++) lut[i * 3 + c] = from[c] + (to[c] - from[c]) * f;
  }
  return lut;
})();

/**
 * Index into the diverging table for a value in [-1, 1] (clamped; NaN maps to the middle).
 * @param {number} value
 * @returns {number}
 */
export function shadeIndex(value) {
  if (!(value === value)) return (SHADES - 1) >> 1;
  const clamped = value < -1 ? -1 : value > 1 ? 1 : value;
  return Math.round(((clamped + 1) / 2) * (SHADES - 1));
}

/**
 * Write the diverging colour of `value` into `out` at byte offset `offset` (RGBA).
 * @param {number} value in [-1, 1]
 * @param {Uint8ClampedArray} out
 * @param {number} offset
 */
export function writeDiverging(value, out, offset) {
  const i = shadeIndex(value) * 3;
  out[offset] = DIVERGING_LUT[i];
  out[offset + 1] = DIVERGING_LUT[i + 1];
  out[offset + 2] = DIVERGING_LUT[i + 2];
  out[offset + 3] = 255;
}

/**
 * CSS colour on the diverging scale.
 * @param {number} value in [-1, 1]
 * @returns {string}
 */
export function divergingCss(value) {
  const i = shadeIndex(value) * 3;
  return `rgb(${DIVERGING_LUT[i]},${DIVERGING_LUT[i + 1]},${DIVERGING_LUT[i + 2]})`;
}

/**
 * RGB of class `k`, cycling the palette when there are more classes than colours.
 * @param {number} k
 * @returns {RGB}
 */
export function classRgb(k) {
  return hexToRgb(CLASS_COLORS[k % CLASS_COLORS.length]);
}

/**
 * CSS colour of class `k`: orange/blue for binary (TFP), the palette for multi-class.
 * @param {string} problem
 * @param {number} k
 * @returns {string}
 */
export function classColor(problem, k) {
  if (problem === 'binary') return k >= 0.5 ? POSITIVE : NEGATIVE;
  return CLASS_COLORS[k % CLASS_COLORS.length];
}
