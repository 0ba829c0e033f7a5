"""trademesh notify: Sends each trader their own accounts' events over the channels they set up (signed webhooks first)"""
