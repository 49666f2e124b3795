"""A Flask app relaying a browser microphone to a realtime session and the reply back."""
