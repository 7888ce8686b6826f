/**
 * Heatmaps drawn into a canvas at grid resolution; CSS scales the canvas (TFP heatmap.ts).
 */
import { MIDDLE, SHADES, classRgb, hexToRgb, writeDiverging } from './colors.js';

const MID_RGB = hexToRgb(MIDDLE);

/**
 * The diverging scale as one RGBA word per shade, laid out as ImageData's bytes (so in the
 * platform's byte order): a pixel is then one Uint32 write instead of four byte writes.
 */
export const PALETTE = (() => {
  const bytes = new Uint8ClampedArray(SHADES * 4);
  for (let i = 0; i < SHADES; i++) writeDiverging((i / (SHADES - 1)) * 2 - 1, bytes, i * 4);
  return new Uint32Array(bytes.buffer);
})();
/** Shade of v in [-1, 1]: (v + 1) * HALF_SHADES, rounded. */
export const HALF_SHADES = (SHADES - 1) / 2;

/**
 * The RGBA word of a value on the diverging scale (clamped to [-1, 1]; NaN is the middle),
 * the same colour as colors.js's writeDiverging.
 * @param {number} v
 */
export function divergingWord(v) {
  if (!(v === v)) return PALETTE[(SHADES - 1) >> 1];
  return PALETTE[Math.round(((v < -1 ? -1 : v > 1 ? 1 : v) + 1) * HALF_SHADES)];
}

/**
 * Size the canvas backing store to the grid, reusing its ImageData between frames.
 * @param {HTMLCanvasElement} canvas
 * @param {number} resolution
 * @returns {{ctx: CanvasRenderingContext2D, image: ImageData}}
 */
function surface(canvas, resolution) {
  if (canvas.width !== resolution || canvas.height !== resolution) {
    canvas.width = resolution;
    canvas.height = resolution;
  }
  const ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext('2d'));
  /** @type {ImageData | undefined} */
  let image = /** @type {any} */ (canvas)._image;
  if (!image || image.width !== resolution) {
    image = ctx.createImageData(resolution, resolution);
    /** @type {any} */ (canvas)._image = image;
  }
  return { ctx, image };
}

/**
 * Draw a scalar field on the diverging scale.
 *
 * `values[row * resolution + col]`, row 0 at the top of the plane (largest x2). `toUnit` maps a
 * value into [-1, 1] (identity for tanh units; 2p - 1 for a sigmoid probability).
 * @param {HTMLCanvasElement} canvas
 * @param {ArrayLike<number>} values
 * @param {number} resolution
 * @param {(v: number) => number} toUnit
 * @param {boolean} discretize colour by sign only
 */
export function drawScalarField(canvas, values, resolution, toUnit, discretize) {
  const { ctx, image } = surface(canvas, resolution);
  const words = new Uint32Array(image.data.buffer);
  const n = resolution * resolution;
  for (let i = 0; i < n; i++) {
    let v = toUnit(values[i]);
    if (discretize) v = v > 0 ? 1 : v < 0 ? -1 : 0;
    words[i] = divergingWord(v);
  }
  ctx.putImageData(image, 0, 0);
}

/**
 * Draw a multi-class output: the winning class's colour, faded toward grey by uncertainty.
 *
 * Confidence (p_max − 1/k) / (1 − 1/k) sets the blend, so a coin-flip region stays grey.
 * @param {HTMLCanvasElement} canvas
 * @param {ArrayLike<number>} classes winning class per cell
 * @param {ArrayLike<number>} winnerProb the winning class's probability per cell
 * @param {number} resolution
 * @param {number} k number of classes
 * @param {boolean} discretize full colour for the winner
 */
export function drawClassField(canvas, classes, winnerProb, resolution, k, discretize) {
  const { ctx, image } = surface(canvas, resolution);
  const data = image.data;
  const palette = Array.from({ length: k }, (_, c) => classRgb(c));
  const n = resolution * resolution;
  const chance = 1 / Math.max(k, 2);
  for (let i = 0; i < n; i++) {
    // 0.8 keeps the points (drawn in full colour) readable over a confident region.
    const sure = Math.max(0, (winnerProb[i] - chance) / (1 - chance));
    const confidence = discretize ? 0.8 : 0.8 * sure;
    const rgb = palette[classes[i]] ?? MID_RGB;
    const o = i * 4;
    for (let c = 0; c < 3; c++) data[o + c] = MID_RGB[c] + (rgb[c] - MID_RGB[c]) * confidence;
    data[o + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
}
