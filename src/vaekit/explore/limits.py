"""The explorer's sizes, in a module without imports so that `vaekit --help` can name them cheaply."""

MAX_POINTS = 2000  # examples on the plane: enough to see the clusters, few enough to draw at once
IW_K = 1000  # importance samples for one example's log p(x): a few ms for an MLP, a stable estimate
ELBO_SAMPLES = 100  # z draws for one example's ELBO terms (the training loss uses one)
MAX_CODES = 64  # codes per /decode request
MAX_STEPS = 32  # images in an interpolation strip
VAE_RANGE = 3.0  # a VAE's plane and sliders cover at least [-3, 3], 99.7 % of N(0, 1)
IDLE_TIMEOUT = 5.0  # seconds a connection may wait between reads before it is closed (browsers reopen one)
MAX_CONNECTIONS = 64  # open connections, one handler thread each; the longest-idle one makes room for a new one
ADMIT_WAIT = 0.5  # seconds a new connection waits for a place when every connection is busy, then 503
DRAW_SAMPLES = 16  # draws from a drawing's posterior q(z|x) that /encode.json returns and the plane shows
