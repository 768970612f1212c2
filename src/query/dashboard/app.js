// The dashboard's controller: sign-in, the page's place (URL hash), the live refresh loop
// and what each kind of failure does. Built on the public query API only (API.md).
import { createApiClient } from './api-client.js';
import { clearCampaigns, loadCampaigns, renderCampaigns } from './campaign-list.js';
import { DetailView, loadDetail } from './detail-view.js';
import { byId, setAttr, setText, show } from './dom.js';
import { formatAgo, formatUtc, fromLocalInputValue, toLocalInputValue } from './format.js';
import { formatHash, parseHash } from './hash-state.js';
import { allowedGranularities, fitGranularity, requestedRange, MAX_WINDOWS, windowCount } from './time-range.js';

// Session storage: survives a reload of this tab, gone when the tab closes, never sent
// anywhere but the Authorization header.
const KEY_STORAGE = 'adclick.apiKey';
const REFRESH_MS = 5_000;
const MAX_BACKOFF_MS = 60_000;

const session = {
  get: () => sessionStorage.getItem(KEY_STORAGE),
  set: (key) => sessionStorage.setItem(KEY_STORAGE, key),
  clear: () => sessionStorage.removeItem(KEY_STORAGE),
};

const api = createApiClient(() => session.get() ?? '');
let state = parseHash(location.hash);
let refreshTimer = null;
let inflight = null;
let generation = 0;
let failures = 0;
let nextRetryAt = null;
let lastSuccessAt = null;
let completeBefore = null;
let shownView = null; // the view (campaign/ad/granularity/range) currently on screen

const hrefOf = (campaignId, adId = null) => formatHash({ ...state, campaignId, adId });
const detail = new DetailView({ hrefOf });

// ---- sign-in / sign-out -------------------------------------------------------------

const SIGNIN_MESSAGES = {
  'invalid-key': 'That API key was not accepted. Check that you pasted all of it, or ask for a new key.',
  revoked: 'Your API key is no longer accepted (it may have been revoked). Sign in with a valid key.',
  'signed-out': 'You are signed out. The key has been removed from this tab.',
  unreachable: 'The API is not reachable right now, so the key could not be checked. Try again in a moment.',
  'rate-limited': 'Too many attempts. Wait a few seconds and try again.',
};

function showSignIn(reason = null) {
  document.body.dataset.view = 'signin';
  show(byId('dashboard'), false);
  show(byId('freshness'), false);
  show(byId('sign-out'), false);
  show(byId('banner'), false);
  show(byId('signin'), true);
  const msg = byId('signin-message');
  show(msg, reason !== null);
  if (reason) {
    setText(msg, SIGNIN_MESSAGES[reason]);
    setAttr(msg, 'data-reason', reason);
    msg.classList.toggle('info', reason === 'signed-out');
  }
  byId('api-key').focus();
}

async function onSignIn(event) {
  event.preventDefault();
  const input = byId('api-key');
  const key = input.value.trim();
  if (!key) return;
  const button = byId('signin-submit');
  button.disabled = true;
  try {
    // Check the key before keeping it: a wrong key never reaches session storage.
    await createApiClient(() => key).campaigns();
    session.set(key);
    input.value = '';
    show(byId('signin-message'), false);
    showDashboard();
  } catch (err) {
    const reason = err.kind === 'unauthorized' ? 'invalid-key' : err.kind === 'rate-limited' ? 'rate-limited' : 'unreachable';
    showSignIn(reason);
  } finally {
    button.disabled = false;
  }
}

function signOut(reason) {
  stopRefreshing();
  session.clear();
  // Nothing of this advertiser stays on the page or in the address bar.
  clearCampaigns();
  detail.clear();
  shownView = null;
  lastSuccessAt = null;
  completeBefore = null;
  state = { ...state, campaignId: null, adId: null };
  history.replaceState(null, '', location.pathname + location.search);
  showSignIn(reason);
}

function showDashboard() {
  document.body.dataset.view = 'dashboard';
  show(byId('signin'), false);
  show(byId('dashboard'), true);
  show(byId('freshness'), true);
  show(byId('sign-out'), true);
  if (state.campaignId === null) detail.clear();
  refresh();
}

// ---- the place on the page ----------------------------------------------------------

const viewKeyOf = (s) => JSON.stringify([s.campaignId, s.adId, s.granularity, s.range]);

function navigate(next) {
  // Through the hash, so Back/Forward and reloads land on the same view. `state` moves
  // now, not at the hashchange event, so a quick second click builds on the first.
  state = next;
  const hash = formatHash(next);
  if (hash === location.hash) refresh();
  else location.hash = hash;
}

/**
 * Campaign and ad links keep real hrefs (open in a new tab works), but a plain click
 * navigates from the current state: the href was written at the last refresh and may
 * predate a range or granularity change made since.
 */
function onLinkClick(event) {
  const a = event.target instanceof Element ? event.target.closest('a[data-nav-campaign]') : null;
  if (!a || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  event.preventDefault();
  const adId = a.dataset.navAd ? Number(a.dataset.navAd) : null;
  navigate({ ...state, campaignId: Number(a.dataset.navCampaign), adId });
}

function onHashChange() {
  state = parseHash(location.hash);
  if (session.get()) refresh();
}

function renderControls(now) {
  for (const b of document.querySelectorAll('button[data-range]')) {
    const r = b.dataset.range;
    const on = r === 'custom' ? !state.range.preset : state.range.preset === r;
    setAttr(b, 'aria-pressed', on);
  }
  const allowed = allowedGranularities(state.range, now);
  for (const b of document.querySelectorAll('button[data-granularity]')) {
    const g = b.dataset.granularity;
    setAttr(b, 'aria-pressed', state.granularity === g);
    b.disabled = !allowed.includes(g);
    setAttr(b, 'title', b.disabled ? `More than ${MAX_WINDOWS.toLocaleString('en-US')} windows in this range` : null);
  }
  if (!state.range.preset) {
    const form = byId('custom-range');
    show(form, true);
    // Show the applied range (e.g. after a reload), unless the user is editing it.
    if (!form.contains(document.activeElement)) {
      byId('custom-from').value = toLocalInputValue(state.range.fromMs);
      byId('custom-to').value = toLocalInputValue(state.range.toMs);
    }
  }
  setAttr(byId('custom-toggle'), 'aria-expanded', !byId('custom-range').hidden);
}

function renderRangeText(fromIso, toIso) {
  const text = fromIso
    ? `Showing ${formatUtc(Date.parse(fromIso), false)} to ${formatUtc(Date.parse(toIso))}${state.range.preset ? ', moving with the clock' : ''}.`
    : '';
  setText(byId('range-text'), text);
}

// ---- refresh loop --------------------------------------------------------------------

function stopRefreshing() {
  clearTimeout(refreshTimer);
  refreshTimer = null;
  inflight?.abort();
  inflight = null;
  nextRetryAt = null;
}

function schedule(delayMs) {
  clearTimeout(refreshTimer);
  nextRetryAt = Date.now() + delayMs;
  refreshTimer = setTimeout(() => {
    // A hidden tab does not poll; it catches up when shown again.
    if (document.hidden) return;
    refresh();
  }, delayMs);
}

async function refresh() {
  if (!session.get()) return;
  stopRefreshing();
  const ctrl = new AbortController();
  inflight = ctrl;
  const gen = ++generation;
  const now = Date.now();

  // A range too long for the chosen granularity moves to the finest one the API accepts.
  const fitted = fitGranularity(state.granularity, state.range, now);
  if (fitted !== state.granularity) {
    state = { ...state, granularity: fitted };
    history.replaceState(null, '', formatHash(state));
  }
  renderControls(now);
  const range = { ...requestedRange(state.range, now), granularity: state.granularity };
  const view = { campaignId: state.campaignId, adId: state.adId };
  const viewKey = viewKeyOf(state);
  const sameView = viewKey === shownView;
  if (!sameView && view.campaignId !== null) detail.setLoading();

  try {
    const detailP = view.campaignId !== null ? loadDetail(api, view, range, ctrl.signal) : Promise.resolve(null);
    const [list, shown] = await Promise.all([loadCampaigns(api, range, ctrl.signal), detailP]);
    if (gen !== generation) return;
    renderCampaigns(list, { range, selectedId: view.campaignId, hrefOf: (id) => hrefOf(id, null) });
    if (shown) detail.render(shown, { sameView });
    else detail.clear();
    shownView = viewKey;
    const series = shown && shown.series ? shown.series : list;
    renderRangeText(series.from, series.to);
    completeBefore = (shown && shown.series ? shown.series.complete_before : list.completeBefore) ?? completeBefore;
    onSuccess();
  } catch (err) {
    if (gen !== generation || (err && err.name === 'AbortError')) return;
    onFailure(err);
  }
}

function onSuccess() {
  failures = 0;
  lastSuccessAt = Date.now();
  show(byId('banner'), false);
  byId('banner').removeAttribute('data-kind');
  renderFreshness();
  schedule(REFRESH_MS);
}

function onFailure(err) {
  if (err.kind === 'unauthorized') {
    signOut('revoked');
    return;
  }
  if (err.kind === 'rate-limited') {
    const waitMs = Math.max(REFRESH_MS, (err.retryAfterSec ?? 1) * 1000);
    schedule(waitMs);
    showBanner('rate-limited');
    return;
  }
  if (err.kind !== 'unavailable') {
    // Not expected for the list (the detail handles its own 404/400): log and treat as down.
    console.error('dashboard refresh failed', err);
  }
  failures += 1;
  const waitMs = Math.min(MAX_BACKOFF_MS, REFRESH_MS * 2 ** (failures - 1));
  schedule(waitMs);
  byId('banner').dataset.failures = String(failures);
  showBanner('unavailable', err);
}

function showBanner(kind, err = null) {
  const banner = byId('banner');
  setAttr(banner, 'data-kind', kind);
  banner.dataset.detail = err ? (err.status ? `HTTP ${err.status}` : 'no answer') : '';
  // The data on screen stays as it is; the banner says how old it is.
  show(banner, true);
  renderBannerText();
}

function renderBannerText() {
  const banner = byId('banner');
  if (banner.hidden) return;
  const secs = nextRetryAt ? Math.max(0, Math.ceil((nextRetryAt - Date.now()) / 1000)) : 0;
  const kept = lastSuccessAt ? ` Showing the data from ${formatUtc(lastSuccessAt)}.` : '';
  const text = banner.dataset.kind === 'rate-limited'
    ? `Too many requests for this API key; pausing.${kept} Next try in ${secs} s.`
    : `The API is not reachable (${banner.dataset.detail}).${kept} Retrying in ${secs} s.`;
  setText(byId('banner-text'), text);
}

function renderFreshness() {
  const box = byId('freshness');
  setAttr(box, 'data-updated-at', lastSuccessAt ? new Date(lastSuccessAt).toISOString() : null);
  setAttr(box, 'data-complete-before', completeBefore);
  setText(byId('updated-ago'), lastSuccessAt ? `Updated ${formatAgo(Date.now() - lastSuccessAt)}` : 'Loading…');
  setText(
    byId('complete-before'),
    completeBefore
      ? `windows closed up to ${formatUtc(Date.parse(completeBefore))} (${formatAgo(Date.now() - Date.parse(completeBefore))})`
      : 'no window closed yet',
  );
  box.classList.toggle('stale', lastSuccessAt !== null && Date.now() - lastSuccessAt > 3 * REFRESH_MS);
}

// ---- controls ------------------------------------------------------------------------

function onRangeButton(r) {
  if (r === 'custom') {
    const form = byId('custom-range');
    const opening = form.hidden;
    show(form, opening);
    setAttr(byId('custom-toggle'), 'aria-expanded', opening);
    if (opening) {
      const { fromMs, toMs } = requestedRange(state.range, Date.now());
      byId('custom-from').value = toLocalInputValue(fromMs);
      byId('custom-to').value = toLocalInputValue(toMs);
      byId('custom-from').focus();
    }
    return;
  }
  show(byId('custom-range'), false);
  navigate({ ...state, range: { preset: r } });
}

function onCustomApply(event) {
  event.preventDefault();
  const fromMs = fromLocalInputValue(byId('custom-from').value);
  const toMs = fromLocalInputValue(byId('custom-to').value);
  const msg = byId('custom-message');
  let problem = null;
  if (fromMs === null || toMs === null) problem = 'Enter both times.';
  else if (toMs <= fromMs) problem = '“To” must be after “From”.';
  else if (windowCount(fromMs, toMs, '1h') > MAX_WINDOWS) problem = 'That range is too long even for 1-hour windows.';
  setText(msg, problem ?? '');
  show(msg, problem !== null);
  if (problem) return;
  navigate({ ...state, range: { fromMs, toMs } });
}

function wire() {
  byId('signin-form').addEventListener('submit', onSignIn);
  byId('sign-out').addEventListener('click', () => signOut('signed-out'));
  byId('retry-now').addEventListener('click', () => refresh());
  byId('reset-zoom').addEventListener('click', () => detail.resetZoom());
  for (const b of document.querySelectorAll('button[data-range]')) b.addEventListener('click', () => onRangeButton(b.dataset.range));
  for (const b of document.querySelectorAll('button[data-granularity]')) {
    b.addEventListener('click', () => navigate({ ...state, granularity: b.dataset.granularity }));
  }
  byId('custom-range').addEventListener('submit', onCustomApply);
  window.addEventListener('hashchange', onHashChange);
  document.addEventListener('click', onLinkClick);
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && session.get() && (lastSuccessAt === null || Date.now() - lastSuccessAt >= REFRESH_MS)) refresh();
  });
  setInterval(() => {
    if (!session.get()) return;
    renderFreshness();
    renderBannerText();
  }, 1000);
}

wire();
if (session.get()) showDashboard();
else showSignIn();
