// Placeholder until the dashboard issue lands; served at `/` by the query API.
export const DASHBOARD_PLACEHOLDER_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>AdClick</title></head>
<body><h1>AdClick</h1><p>The dashboard is coming soon. Meanwhile, use the query API under <code>/v1/</code>.</p></body></html>
`;
