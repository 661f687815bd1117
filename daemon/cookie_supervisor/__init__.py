"""cookie-supervisor: keeps the YouTube cookies of a yt-dlp download backend alive."""

__version__ = "0.1.0"
