"""The pages oca-proxy answers itself: the dashboard, the login pages, /health and the
dashboard's /api/* (local), with their HTML (loginpages, dashboard) and static assets."""
