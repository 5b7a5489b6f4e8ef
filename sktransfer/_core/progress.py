"""Progress bars for long work (decoding, tokenising, forward passes), or none."""

from tqdm.auto import tqdm


class _Silent:
    def update(self, n):
        pass

    def close(self):
        pass


def progress_bar(show, total, desc, unit="img"):
    """Return a tqdm bar over ``total`` items when ``show``, else an object that does nothing."""
    if not show:
        return _Silent()
    return tqdm(total=total, desc=desc, unit=unit)
