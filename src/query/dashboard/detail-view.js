// One campaign or one ad: the clicks-per-window chart, the same numbers as a table (for
// keyboard and screen-reader users, and for tests reading exactly what is drawn), and the
// campaign's top ads, each linking to that ad's own chart.
import { byId, setAttr, setText, show, syncRows } from './dom.js';
import { formatCount, formatUtc } from './format.js';
import { SeriesChart } from './series-chart.js';

const ADS_LIMIT = 10;
const GRANULARITY_TEXT = { '1m': '1-minute', '5m': '5-minute', '1h': '1-hour' };

/**
 * Fetches what the detail shows. A missing/foreign object or a refused range is part of
 * the view (`error`); a bad key or an unreachable API is thrown for the page to handle.
 */
export async function loadDetail(api, view, range, signal) {
  try {
    const series = view.adId !== null
      ? await api.adSeries(view.adId, range, signal)
      : await api.campaignSeries(view.campaignId, range, signal);
    const ads = await api.campaignAds(series.campaign_id, range, ADS_LIMIT, signal);
    return { view, series, ads, error: null };
  } catch (err) {
    if (err.kind === 'not-found' || err.kind === 'bad-request') return { view, series: null, ads: null, error: err };
    throw err;
  }
}

export class DetailView {
  constructor({ hrefOf }) {
    this.hrefOf = hrefOf;
    this.root = byId('detail');
    this.chart = null;
  }

  /** A new view is on its way: the old one stays visible (dimmed) until it arrives. */
  setLoading() {
    setAttr(this.root, 'data-status', 'loading');
    setAttr(this.root, 'aria-busy', 'true');
  }

  clear() {
    for (const name of ['data-kind', 'data-id', 'data-campaign-id', 'data-from', 'data-to', 'data-granularity', 'data-total-clicks', 'data-complete-before']) {
      this.root.removeAttribute(name);
    }
    setAttr(this.root, 'data-status', 'idle');
    setAttr(this.root, 'aria-busy', null);
    setText(byId('detail-title'), 'Choose a campaign');
    setText(byId('detail-summary'), 'Pick a campaign on the left to see its clicks per window and its top ads.');
    show(byId('breadcrumb'), false);
    show(byId('detail-message'), false);
    show(byId('chart-area'), false);
    show(byId('ads-area'), false);
    byId('series-table').tBodies[0].replaceChildren();
    byId('ads-table').tBodies[0].replaceChildren();
    this.chart?.destroy();
    this.chart = null;
  }

  /** @param sameView a live refresh of what is on screen (keep zoom) rather than a new view */
  render(detail, { sameView }) {
    const { view, series, ads, error } = detail;
    const isAd = view.adId !== null;
    setText(byId('detail-title'), isAd ? `Ad ${view.adId}` : `Campaign ${view.campaignId}`);
    setAttr(this.root, 'data-kind', isAd ? 'ad' : 'campaign');
    setAttr(this.root, 'data-id', isAd ? view.adId : view.campaignId);
    setAttr(this.root, 'aria-busy', null);
    const crumbCampaign = series ? series.campaign_id : view.campaignId;
    show(byId('breadcrumb'), isAd);
    if (isAd) {
      const link = byId('breadcrumb-campaign');
      setText(link, `Campaign ${crumbCampaign}`);
      setAttr(link, 'href', this.hrefOf(crumbCampaign, null));
      setAttr(link, 'data-nav-campaign', crumbCampaign);
      setText(byId('breadcrumb-ad'), `Ad ${view.adId}`);
    }

    if (error) {
      setAttr(this.root, 'data-status', 'error');
      const what = isAd ? `Ad ${view.adId}` : `Campaign ${view.campaignId}`;
      const text = error.kind === 'not-found'
        ? `${what} was not found for this API key. Pick one of your campaigns on the left.`
        : `The API refused this view: ${error.message}`;
      setText(byId('detail-message'), text);
      setAttr(byId('detail-message'), 'data-reason', error.kind);
      show(byId('detail-message'), true);
      setText(byId('detail-summary'), '');
      show(byId('chart-area'), false);
      show(byId('ads-area'), false);
      return;
    }
    show(byId('detail-message'), false);

    const fromMs = Date.parse(series.from);
    const toMs = Date.parse(series.to);
    const cbMs = series.complete_before ? Date.parse(series.complete_before) : null;
    setAttr(this.root, 'data-status', 'ready');
    setAttr(this.root, 'data-campaign-id', series.campaign_id);
    setAttr(this.root, 'data-from', series.from);
    setAttr(this.root, 'data-to', series.to);
    setAttr(this.root, 'data-granularity', series.granularity);
    setAttr(this.root, 'data-total-clicks', series.total_clicks);
    setAttr(this.root, 'data-complete-before', series.complete_before);
    const open = series.points.filter((p) => !p.final).length;
    setText(
      byId('detail-summary'),
      `${formatCount(series.total_clicks)} clicks from ${formatUtc(fromMs, false)} to ${formatUtc(toMs)} in ${series.points.length} ${GRANULARITY_TEXT[series.granularity]} windows`
        + (open ? ` (${open} still open)` : ''),
    );

    show(byId('chart-area'), true);
    if (!this.chart) {
      this.chart = new SeriesChart(byId('chart'), { onZoomChange: (zoomed) => show(byId('reset-zoom'), zoomed) });
    }
    this.chart.update(series.points, { fromMs, toMs, completeBeforeMs: cbMs, keepZoom: sameView });
    setAttr(byId('chart'), 'aria-label', `Bar chart of clicks per ${GRANULARITY_TEXT[series.granularity]} window; the data table below lists the same numbers`);
    show(byId('series-empty'), series.total_clicks === 0);
    this.renderSeriesTable(series.points);
    this.renderAds(ads, view, series.campaign_id);
  }

  renderSeriesTable(points) {
    syncRows(
      byId('series-table').tBodies[0],
      points,
      (p) => p.window_start,
      () => {
        const tr = document.createElement('tr');
        tr.append(document.createElement('td'), document.createElement('td'), document.createElement('td'));
        return tr;
      },
      (tr, p) => {
        const state = p.final ? (p.revised ? 'closed, revised' : 'closed') : 'open';
        setAttr(tr, 'data-window-start', p.window_start);
        setAttr(tr, 'data-clicks', p.clicks);
        setAttr(tr, 'data-final', p.final);
        setAttr(tr, 'data-revised', p.revised === true);
        setText(tr.cells[0], formatUtc(Date.parse(p.window_start), false));
        setText(tr.cells[1], formatCount(p.clicks));
        setText(tr.cells[2], state);
        setAttr(tr.cells[2], 'class', p.final ? null : 'state-open');
      },
    );
  }

  renderAds(ads, view, campaignId) {
    show(byId('ads-area'), true);
    setText(byId('ads-title'), `Top ads of campaign ${campaignId}`);
    const table = byId('ads-table');
    setAttr(table, 'data-campaign-id', campaignId);
    setAttr(table, 'data-from', ads.from);
    setAttr(table, 'data-to', ads.to);
    syncRows(
      table.tBodies[0],
      ads.ads,
      (a) => a.ad_id,
      () => {
        const tr = document.createElement('tr');
        const name = document.createElement('td');
        name.append(document.createElement('a'));
        tr.append(name, document.createElement('td'));
        return tr;
      },
      (tr, a) => {
        setAttr(tr, 'data-ad-id', a.ad_id);
        setAttr(tr, 'data-clicks', a.clicks);
        setAttr(tr, 'aria-current', a.ad_id === view.adId ? 'true' : null);
        const link = tr.cells[0].firstElementChild;
        setText(link, `Ad ${a.ad_id}`);
        setAttr(link, 'href', this.hrefOf(campaignId, a.ad_id));
        setAttr(link, 'data-nav-campaign', campaignId);
        setAttr(link, 'data-nav-ad', a.ad_id);
        setText(tr.cells[1], formatCount(a.clicks));
      },
    );
    show(byId('ads-empty'), ads.ads.length === 0);
    show(table, ads.ads.length > 0);
  }

  resetZoom() {
    this.chart?.resetZoom();
  }
}
