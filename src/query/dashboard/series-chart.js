// The clicks-per-window chart, on uPlot (served locally, loaded as a classic script that
// defines window.uPlot). Closed windows and open ones (ending after complete_before) are
// two bar series with different colours, over a tinted band, with a dashed line at
// complete_before. Live refreshes replace the data without rebuilding the chart and keep
// a user's zoom.
import { formatUtc } from './format.js';

const CLOSED = '#1f5fbf';
const OPEN = '#c26a00';
const DAY_S = 86_400;
/** Whole-number tick steps for the click axis (uPlot's defaults include 0.2, 0.5...). */
const COUNT_STEPS = Array.from({ length: 10 }, (_, e) => [1, 2, 5].map((m) => m * 10 ** e)).flat();

/** Tick labels in UTC, 24-hour: `10:05`, or `11-27 10:00` when the view spans days. */
function tickLabels(u, splits) {
  const spanS = u.scales.x.max - u.scales.x.min;
  return splits.map((s) => {
    const iso = new Date(s * 1000).toISOString();
    return spanS > DAY_S ? `${iso.slice(5, 10)} ${iso.slice(11, 16)}` : iso.slice(11, 16);
  });
}

export class SeriesChart {
  /** @param {HTMLElement} container */
  constructor(container, { onZoomChange } = {}) {
    this.container = container;
    this.onZoomChange = onZoomChange ?? (() => {});
    this.plot = null;
    this.zoom = null; // {min, max} in seconds while the user has zoomed in, else null
    this.fullRange = null;
    this.completeBeforeSec = null;
    this.applying = false;
    this.resizeObserver = new ResizeObserver(() => this.resize());
    this.resizeObserver.observe(container);
  }

  size() {
    return { width: Math.max(280, this.container.clientWidth), height: 300 };
  }

  resize() {
    if (!this.plot) return;
    const { width, height } = this.size();
    if (width !== this.plot.width) this.plot.setSize({ width, height });
  }

  create(data) {
    const uPlot = window.uPlot;
    const bars = uPlot.paths.bars({ size: [0.9, 60], align: 1 });
    const chart = this;
    const opts = {
      ...this.size(),
      // Windows are UTC-aligned; local-time axis labels would misplace hour boundaries.
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), 'Etc/UTC'),
      scales: {
        // Identity: the page always sets x explicitly (the whole answered range, or the zoom).
        x: { time: true, range: (_u, min, max) => (min === max ? [min, min + 60] : [min, max]) },
        y: { range: (_u, _min, max) => [0, Math.max(1, max) * 1.1] },
      },
      axes: [
        { stroke: '#4a5560', grid: { stroke: '#e6e9ed' }, values: tickLabels,
          // Room for `11-27 10:00` labels when the view spans days.
          space: (_u, _i, min, max) => (max - min > DAY_S ? 110 : 60) },
        { stroke: '#4a5560', grid: { stroke: '#e6e9ed' }, size: 60, incrs: COUNT_STEPS },
      ],
      cursor: {
        drag: { x: true, y: false, setScale: true },
        // uPlot's own double-click reset would fit the data (ending at the last window's
        // start); ours shows the whole answered range.
        bind: { dblclick: () => () => { chart.resetZoom(); return null; } },
      },
      legend: { show: true },
      series: [
        { label: 'Window start', value: (_u, v) => (v == null ? '–' : formatUtc(v * 1000)) },
        { label: 'Closed', stroke: CLOSED, fill: CLOSED, width: 0, paths: bars, points: { show: false }, value: (_u, v) => (v == null ? '–' : String(v)) },
        { label: 'Open', stroke: OPEN, fill: 'rgba(194, 106, 0, 0.35)', width: 1, paths: bars, points: { show: false }, value: (_u, v) => (v == null ? '–' : String(v)) },
      ],
      hooks: {
        setScale: [(u, key) => {
          if (key !== 'x' || this.applying || !this.fullRange) return;
          const { min, max } = u.scales.x;
          const xs = u.data[0];
          const near = (a, b) => Math.abs(a - b) < 1e-3;
          // The whole range, or uPlot fitting the data on its own (at start-up), is no zoom.
          const whole = (near(min, this.fullRange[0]) && near(max, this.fullRange[1]))
            || (xs.length > 0 && near(min, xs[0]) && near(max, xs[xs.length - 1]));
          this.zoom = whole ? null : { min, max };
          this.onZoomChange(this.zoom !== null);
        }],
        // Behind the bars: a tint over the open part, so open windows read as open even at 0.
        drawClear: [(u) => chart.drawOpenBand(u)],
        draw: [(u) => chart.drawCompleteBefore(u)],
      },
    };
    this.plot = new uPlot(opts, data, this.container);
    this.applyScale(null);
  }

  /** Show the zoom, or the whole answered range; y re-ranges over what is visible. */
  applyScale(zoom) {
    this.applying = true;
    try {
      const [min, max] = zoom ? [zoom.min, zoom.max] : this.fullRange;
      // batch(): commit now, so the setScale hook runs while `applying` is still set.
      this.plot.batch(() => this.plot.setScale('x', { min, max }));
    } finally {
      this.applying = false;
    }
  }

  drawOpenBand(u) {
    const cb = this.completeBeforeSec;
    if (cb === null) return;
    const right = u.bbox.left + u.bbox.width;
    const x = Math.max(u.bbox.left, Math.round(u.valToPos(cb, 'x', true)));
    if (x >= right) return;
    u.ctx.save();
    u.ctx.fillStyle = 'rgba(194, 106, 0, 0.08)';
    u.ctx.fillRect(x, u.bbox.top, right - x, u.bbox.height);
    u.ctx.restore();
  }

  drawCompleteBefore(u) {
    const cb = this.completeBeforeSec;
    if (cb === null) return;
    const x = Math.round(u.valToPos(cb, 'x', true));
    if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) return;
    const ctx = u.ctx;
    ctx.save();
    ctx.strokeStyle = '#4a5560';
    ctx.lineWidth = 1;
    ctx.setLineDash([5, 4]);
    ctx.beginPath();
    ctx.moveTo(x + 0.5, u.bbox.top);
    ctx.lineTo(x + 0.5, u.bbox.top + u.bbox.height);
    ctx.stroke();
    ctx.restore();
  }

  /**
   * @param points API points ({window_start, clicks, final})
   * @param fromMs,toMs the answered (aligned) range, shown whole unless zoomed
   * @param keepZoom a live refresh of the same view (true) or a new view (false)
   */
  update(points, { fromMs, toMs, completeBeforeMs, keepZoom }) {
    const xs = new Array(points.length);
    const closed = new Array(points.length);
    const open = new Array(points.length);
    points.forEach((p, i) => {
      xs[i] = Date.parse(p.window_start) / 1000;
      closed[i] = p.final ? p.clicks : null;
      open[i] = p.final ? null : p.clicks;
    });
    this.fullRange = [fromMs / 1000, toMs / 1000];
    this.completeBeforeSec = completeBeforeMs === null ? null : completeBeforeMs / 1000;
    const data = [xs, closed, open];
    if (!this.plot) {
      this.create(data);
      return;
    }
    if (!keepZoom && this.zoom) {
      this.zoom = null;
      this.onZoomChange(false);
    }
    this.applying = true;
    try {
      this.plot.batch(() => {
        this.plot.setData(data, false);
        const [min, max] = this.zoom ? [this.zoom.min, this.zoom.max] : this.fullRange;
        this.plot.setScale('x', { min, max });
      });
    } finally {
      this.applying = false;
    }
  }

  resetZoom() {
    if (!this.plot || !this.fullRange) return;
    this.zoom = null;
    this.applyScale(null);
    this.onZoomChange(false);
  }

  destroy() {
    this.resizeObserver.disconnect();
    this.plot?.destroy();
    this.plot = null;
  }
}
